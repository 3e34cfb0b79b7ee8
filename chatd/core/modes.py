"""
A channel's modes, as IRC named them and every door shows them: its
rules (`+t`, `+k KEY`, `+l N`, `+i`, `+m`, `+s`, `+n`), its ban,
ban exception and invite exception masks (`+b`, `+e`, `+I`), and its members' ranks (`@` operator, `+`
voiced).  Pure: state and the functions that read and change it; who may
change it is chatd.core.operators'.

The letters are chat's lingua franca, so they are the core's own names for
them: IRC sends them as they are, telnet and the web page type `/mode #lab
+k secret` too, and the operators' shorter commands (`/op`, `/ban`) are
changes spelt out.

Masks are `nick!user@host` with `*` and `?` wildcards, matched ignoring
case, as IRC servers match them; a user matches by their address as well
as by the host IRC shows (`chatd`), so `*!*@192.168.1.7` bans a machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from attrs import define, field, frozen

from chatd.core.nicknames import ChannelNameError, NicknameError, check_channel_name, check_nickname
from chatd.core.text import clean

# Rules a channel has or not; and those with an argument.
FLAGS = "imnst"
# With an argument when set (the key, the limit) and, for lists, when unset too.
WITH_ARGUMENT_WHEN_SET = "kl"
LISTS = "beI"  # bans, ban exceptions, invite exceptions
RANKS = {"o": "@", "v": "+"}
# What an operator may change, in one string: how IRC's 004 and CHANMODES name them.
KNOWN = "Ibeiklmnostv"

# The host every user shows (IRC's `nick!user@chatd`): a user's address is theirs to know, and the server's.
SHOWN_HOST = "chatd"

# The most bans (and, apart, exceptions) a channel keeps, as InspIRCd's default allows.
MAX_MASKS = 100
# The most changes one command makes (IRC's MODES).
MAX_CHANGES = 20
MAX_KEY_CHARS = 32

# A change: "+k" and its argument ("" for none), "-o" and a nickname.
Change = tuple[str, str]


@frozen
class MaskEntry:
    mask: str
    by: str
    at: float


@define
class ChannelModes:
    """One channel's modes (a new one's: +nt), masks and invitations."""

    flags: set[str] = field(factory=lambda: {"n", "t"})
    key: str = ""
    limit: int = 0  # 0: none
    # +b, +e and +I, by mask, in the order set.
    masks: dict[str, dict[str, MaskEntry]] = field(factory=lambda: {letter: {} for letter in LISTS})
    # Nickname keys invited (INVITE) since they last joined: they pass +i, +k, +l and +b once.
    invited: set[str] = field(factory=set)
    # The account that founded the channel ("" none): it is made operator whenever it joins.
    founder: str = ""
    created_at: float = 0.0
    changed_at: float = 0.0  # when an operator last changed the modes (a cluster's nodes keep the latest)

    def shown(self, with_key: bool) -> tuple[str, tuple[str, ...]]:
        """The modes as IRC's 324 has them: "+klnt" and ("secret", "10"); the key as "*" unless `with_key`."""
        letters = sorted(self.flags | ({"k"} if self.key else set()) | ({"l"} if self.limit else set()))
        arguments = []
        for letter in letters:
            if letter == "k":
                arguments.append(self.key if with_key else "*")
            elif letter == "l":
                arguments.append(str(self.limit))
        return "+" + "".join(letters), tuple(arguments)

    def banned(self, masks: Sequence[str]) -> bool:
        """Whether a user known by these `nick!user@host` forms is banned here (and not excepted)."""
        return (any(matches(ban, masks) for ban in self.masks["b"])
                and not any(matches(exception, masks) for exception in self.masks["e"]))

    def invite_exempt(self, masks: Sequence[str]) -> bool:
        """Whether a user known by these `nick!user@host` forms joins this +i channel without an invitation (+I)."""
        return any(matches(exempt, masks) for exempt in self.masks["I"])


def user_masks(nick: str, user: str, hosts: Iterable[str]) -> tuple[str, ...]:
    """The `nick!user@host` forms a user is known by, one for each of their hosts."""
    return tuple(f"{nick}!{user}@{host}" for host in hosts if host)


def matches(mask: str, masks: Sequence[str]) -> bool:
    """Whether `mask` (`*`, `?`; every other character as itself, ignoring case) matches one of `masks`."""
    pattern = mask.casefold()
    return any(_glob(pattern, known.casefold()) for known in masks)


def _glob(pattern: str, text: str) -> bool:
    """
    Wildcard matching in at most len(pattern) * len(text) steps, whatever
    the pattern: a mask is anyone's input, and a regular expression of many
    `*` backtracks for ever on a name it does not match.
    """
    p = t = 0
    star, resume = -1, 0  # the last `*` seen, and where in `text` it next takes one more character from
    while t < len(text):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p += 1
            t += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, resume = p, t
            p += 1
        elif star >= 0:
            resume += 1
            p, t = star + 1, resume
        else:
            return False
    return all(character == "*" for character in pattern[p:])


def full_mask(mask: str) -> str:
    """A mask as servers keep it: `bob` -> `bob!*@*`, `*@host` -> `*!*@host`, `u@h` -> `*!u@h`."""
    mask = mask.strip()
    nick, bang, rest = mask.partition("!")
    if not bang:
        if "@" in mask:
            nick, rest = "*", mask
        else:
            rest = "*"
    user, at, host = rest.partition("@")
    if not at:
        host = "*"
    return f"{nick or '*'}!{user or '*'}@{host or '*'}"


@frozen
class ModeWords:
    """A mode string and its arguments, read as changes: what was understood, and the letters that were not."""

    changes: tuple[Change, ...]
    unknown: tuple[str, ...] = ()
    # The lists asked for (a bare `b` or `+b`), which are shown, not changed.
    lists: tuple[str, ...] = ()


def read_mode_words(words: Sequence[str]) -> ModeWords:
    """
    `+o-v bob carol`, `+k secret`, `-l`, `b`: the changes (each with its
    argument, "" when it takes none), the unknown letters, and a list asked
    for.  A change that needs an argument and lacks it is left out, as
    IRC servers drop it.  At most MAX_CHANGES.
    """
    if not words:
        return ModeWords(())
    modes, arguments = words[0], list(words[1:])
    sign, changes, unknown, lists = "+", [], [], []
    for letter in modes:
        if letter in "+-":
            sign = letter
            continue
        if letter not in KNOWN:
            unknown.append(letter)
            continue
        takes = letter in RANKS or letter in LISTS or (sign == "+" and letter in WITH_ARGUMENT_WHEN_SET)
        if sign == "-" and letter == "k":  # IRC clients send the key to unset it; a person may not
            changes.append(("-k", arguments.pop(0) if arguments else ""))
        elif not takes:
            changes.append((sign + letter, ""))
        elif arguments:
            changes.append((sign + letter, arguments.pop(0)))
        elif letter in LISTS:
            lists.append(letter)
    return ModeWords(tuple(changes[:MAX_CHANGES]), tuple(unknown), tuple(lists))


def spelt(changes: Sequence[Change]) -> tuple[str, ...]:
    """Changes as one mode string and its arguments: (("+o", "bob"), ("+t", "")) -> ("+ot", "bob")."""
    letters, arguments, sign = [], [], ""
    for change, argument in changes:
        if change[0] != sign:
            sign = change[0]
            letters.append(sign)
        letters.append(change[1])
        if argument:
            arguments.append(argument)
    return ("".join(letters), *arguments)


@frozen
class ChannelState:
    """
    A channel's modes as a value: what a node tells the others of a channel
    (with when an operator last changed them, the latest wins, and the ranks
    of its users), and what the store keeps of a founder's channel.
    """

    channel: str
    flags: str  # "nt"
    key: str = ""
    limit: int = 0
    masks: tuple[tuple[str, str, str, float], ...] = ()  # (list "b" or "e", mask, by, at)
    founder: str = ""
    created_at: float = 0.0
    changed_at: float = 0.0
    ranks: tuple[tuple[str, str], ...] = ()  # (nickname, "@", "+" or "@+")


def channel_state(name: str, modes: ChannelModes, ranks: tuple[tuple[str, str], ...] = ()) -> ChannelState:
    return ChannelState(
        name, "".join(sorted(modes.flags)), modes.key, modes.limit,
        tuple((kind, entry.mask, entry.by, entry.at) for kind, kept in modes.masks.items() for entry in kept.values()),
        modes.founder, modes.created_at, modes.changed_at, ranks)


def restore(modes: ChannelModes, kept: ChannelState) -> None:
    """`modes` as `kept` has them (not the ranks: they are of members)."""
    modes.flags, modes.key, modes.limit = set(kept.flags), kept.key, kept.limit
    modes.masks = {letter: {} for letter in LISTS}
    for kind, mask, by, at in kept.masks:
        modes.masks[kind][mask] = MaskEntry(mask, by, at)
    modes.founder, modes.created_at, modes.changed_at = kept.founder, kept.created_at, kept.changed_at


def channel_state_to_list(state: ChannelState) -> list[Any]:
    """[CHANNEL, FLAGS, KEY, LIMIT, [[LIST, MASK, BY, AT], ...], FOUNDER, CREATED, CHANGED, [[NICK, RANK], ...]]."""
    return [state.channel, state.flags, state.key, state.limit, [list(mask) for mask in state.masks], state.founder,
            state.created_at, state.changed_at, [list(rank) for rank in state.ranks]]


def channel_state_from_list(fields: Any) -> ChannelState:
    """What channel_state_to_list made (TypeError or ValueError if it is not)."""
    channel, flags, key, limit, masks, founder, created, changed, ranks = fields
    return ChannelState(str(channel), str(flags), str(key), int(limit),
                        tuple((str(kind), str(mask), str(by), float(at)) for kind, mask, by, at in masks),
                        str(founder), float(created), float(changed), tuple((str(nick), str(rank)) for nick, rank in ranks))


def is_mode_change(change: object, argument: object) -> bool:
    """A change as chatd makes them: a sign and a known letter, and one word (a nickname, a key, a mask) or none."""
    return (type(change) is str and len(change) == 2 and change[0] in "+-" and change[1] in KNOWN
            and type(argument) is str and len(argument) <= 200 and argument == clean(argument)
            and not any(character.isspace() for character in argument))


def checked_channel_state(state: ChannelState) -> ChannelState | None:
    """A channel's modes from Redis or from disk, as chatd would have made them; None if its names are not valid."""
    try:
        return ChannelState(
            check_channel_name(state.channel), "".join(flag for flag in state.flags if flag in FLAGS),
            state.key if is_mode_change("+k", state.key) else "", max(0, min(state.limit, 1_000_000)),
            tuple(mask for mask in state.masks if mask[0] in LISTS and is_mode_change("+b", mask[1])
                  and is_mode_change("+b", mask[2])),
            state.founder if is_mode_change("+o", state.founder) else "", state.created_at, state.changed_at,
            tuple((check_nickname(nick), rank) for nick, rank in state.ranks if rank in ("@", "+", "@+")))
    except (NicknameError, ChannelNameError):
        return None
