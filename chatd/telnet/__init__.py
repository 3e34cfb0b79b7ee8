"""telnet"""
