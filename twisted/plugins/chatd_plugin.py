from twisted.application.service import ServiceMaker

chatd = ServiceMaker(
    "chatd",
    "chatd.service.tap",
    "A LAN chat room reached with telnet or nc.",
    "chatd",
)
