"""chatd: a LAN chat server reached with telnet, with UDP discovery."""

__version__ = "0.1.0"
