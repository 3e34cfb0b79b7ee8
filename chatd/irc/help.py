"""
HELP (and HELPOP, its older name): a line or two on each command the IRC
door understands, as modern IRC servers answer it (704, 705 ..., 706;
524 for a subject without help).  Pure.
"""

from __future__ import annotations

# By command: its syntax, then what it does.
TOPICS: dict[str, tuple[str, ...]] = {
    "ADMIN": ("ADMIN", "Who runs this server."),
    "AWAY": ("AWAY [:REASON]", "Mark yourself away (with a reason), or back (without one)."),
    "CAP": ("CAP LS 302 | CAP REQ :CAPS | CAP LIST | CAP END", "Negotiate IRCv3 capabilities."),
    "HELP": ("HELP [COMMAND]", "This help: the commands, or one of them."),
    "INFO": ("INFO", "What this server is."),
    "INVITE": ("INVITE [NICK #CHANNEL]", "Invite NICK into #CHANNEL (past +i, +k, +l and bans, once); "
               "alone, the channels you are invited to."),
    "ISON": ("ISON NICK [NICK ...]", "Which of these nicknames are online."),
    "JOIN": ("JOIN #CHANNEL[,#CHANNEL ...] [KEY[,KEY ...]] | JOIN 0",
             "Join channels (made if new: you are their operator), or leave them all."),
    "KICK": ("KICK #CHANNEL NICK[,NICK ...] [:REASON]", "Put someone out of a channel you are an operator of."),
    "KILL": ("KILL NICK [:REASON]", "Disconnect a user (server operators)."),
    "LIST": ("LIST [#CHANNEL[,...] | CONDITIONS]",
             "The channels, or those named; conditions: >N, <N members, C>M, C<M made, T>M, T<M topic set "
             "(minutes ago), a mask, !mask."),
    "LUSERS": ("LUSERS", "How many users and channels there are."),
    "MODE": ("MODE #CHANNEL [+|-MODES [ARGS]] | MODE NICK",
             "A channel's modes (beIiklmnost), or change them as its operator; your own modes."),
    "MONITOR": ("MONITOR + NICKS | - NICKS | C | L | S", "Be told when nicknames come online and go."),
    "MOTD": ("MOTD", "The message of the day."),
    "NAMES": ("NAMES #CHANNEL[,#CHANNEL ...]", "Who is in a channel."),
    "NICK": ("NICK NICKNAME", "Choose or change your nickname."),
    "NOTICE": ("NOTICE TARGET[,TARGET ...] :TEXT", "A message that is never answered automatically."),
    "OPER": ("OPER NAME PASSWORD", "Become a server operator."),
    "PART": ("PART #CHANNEL[,#CHANNEL ...] [:REASON]", "Leave channels."),
    "PASS": ("PASS PASSWORD", "Your registered nickname's password, before NICK."),
    "PING": ("PING TOKEN", "The server answers PONG TOKEN."),
    "PRIVMSG": ("PRIVMSG TARGET[,TARGET ...] :TEXT", "Say TEXT in a channel, or to a nickname privately."),
    "QUIT": ("QUIT [:REASON]", "Leave the chat."),
    "TIME": ("TIME", "The server's time."),
    "TOPIC": ("TOPIC #CHANNEL [:TOPIC]", "A channel's topic, or set it (only operators where +t)."),
    "USER": ("USER USERNAME 0 * :REAL NAME", "Your user name and real name, at registration."),
    "USERHOST": ("USERHOST NICK [NICK ...]", "Nicknames' user@host and whether they are away."),
    "VERSION": ("VERSION", "The server's version and what it supports (005)."),
    "WHO": ("WHO #CHANNEL | WHO MASK [%FIELDS[,TOKEN]]", "Who is in a channel, or who matches a mask (WHOX)."),
    "WHOIS": ("WHOIS NICK", "Who someone is: user name, real name, channels, idle time, account."),
    "WHOWAS": ("WHOWAS NICK [COUNT]", "Who had a nickname that is gone."),
}
TOPICS["HELPOP"] = TOPICS["HELP"]
TOPICS["NICKSERV"] = ("NICKSERV REGISTER PASSWORD | IDENTIFY PASSWORD | PASSWORD OLD NEW | DROP PASSWORD",
                      "Keep your nickname for you, and prove it is yours (also /msg NickServ ...).")

INDEX = ("chatd's IRC commands (HELP COMMAND for one of them):",
         *(" ".join(sorted(TOPICS)[start:start + 10]) for start in range(0, len(TOPICS), 10)))


def help_lines(subject: str) -> tuple[str, tuple[str, ...]] | None:
    """The subject as answered and its lines, for HELP `subject` ("": the index); None if there is no such help."""
    if not subject:
        return "*", INDEX
    found = TOPICS.get(subject.upper())
    return None if found is None else (subject.upper(), found)
