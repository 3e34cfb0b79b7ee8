"""
Baseline, not part of chatd: a chat server written the way the Twisted
documentation's examples are, a LineReceiver and a dict of users, one
transport.write per recipient.  Same wire protocol as chatd for the load
generator: the first line is the nickname, then every line is said to all.

    python benchmarks/naive_twisted_chat.py PORT
"""

import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver


class Chat(LineReceiver):
    def __init__(self, users):
        self.users = users
        self.name = None

    def connectionMade(self):
        self.sendLine(b"*** Welcome. Choose a nickname:")

    def connectionLost(self, reason):
        self.users.pop(self.name, None)

    def lineReceived(self, line):
        if self.name is None:
            self.name = line
            self.users[line] = self
            self.sendLine(b"*** Hello " + line + b"!")
            return
        message = b"<" + self.name + b"> " + line
        for user in self.users.values():
            if user is not self:
                user.sendLine(message)


class ChatFactory(protocol.Factory):
    def __init__(self):
        self.users = {}

    def buildProtocol(self, addr):
        return Chat(self.users)


if __name__ == "__main__":
    # The one change from the documentation's style: a backlog of 1024 (as
    # chatd and the C server have), so logging in 10 000 clients does not
    # wait on SYN retries.  It changes nothing that is measured.
    port = reactor.listenTCP(int(sys.argv[1]), ChatFactory(), backlog=1024, interface="127.0.0.1")
    print(f"listening on {port.getHost().port}", flush=True)
    reactor.run()
