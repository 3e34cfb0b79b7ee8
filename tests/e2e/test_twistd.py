"""
End to end: the real `twistd -n chatd` process, real sockets, every format a
user meets.  Readiness comes from the server's own log line, never a sleep.
"""

import json
import signal
import socket
import struct
import subprocess

import pytest
from tests.chatd_process import (
    TIMEOUT_SECONDS,
    ChatdProcess,
    LineClient,
    environment,
    twistd_command,
)
from tests.conftest import free_port_run, occupied

from chatd.telnet.render import help_lines

# What /help lists on a chatd with its store (accounts kept) and no moderation, as these tests start it.
HELP = help_lines(moderation=False, accounts=True)

IAC, DO, DONT, WILL = b"\xff", b"\xfd", b"\xfe", b"\xfb"
WINDOWS_TELNET_HELLO = bytes.fromhex("FFFB1F FFFB20 FFFB18 FFFB27 FFFD01 FFFB03 FFFD03".replace(" ", ""))
WINDOWS_TELNET_ANSWER = bytes.fromhex("FFFD1F FFFE20 FFFE18 FFFE27 FFFB01 FFFD03 FFFB03 FFFD00".replace(" ", ""))


@pytest.fixture
def chatd(tmp_path):
    """A running chatd on an ephemeral loopback port; yields (process, port)."""
    port_file = tmp_path / "port"
    server = ChatdProcess(
        "--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", "lab", "--echo-port", "0",
        cwd=tmp_path,
    )
    try:
        line = server.wait_for_log("chat room listening on")
        port = int(port_file.read_text())
        assert line.endswith(f"chat room listening on 127.0.0.1:{port}")
        assert any("open files limit leaves room for" in logged for logged in server.log)
        yield server, port
    finally:
        server.stop()


@pytest.fixture
def connect(chatd):
    clients = []

    def connect() -> LineClient:
        client = LineClient(chatd[1])
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def test_greeting_counts_users_who_have_chosen_a_nickname(connect):
    """0 users, then 1 user, then 2 users online; the prompt follows."""
    first = connect()
    assert first.read_lines(2) == ["*** Welcome to chatd on lab. 0 users online.", "*** Choose a nickname:"]
    lurker = connect()
    assert lurker.read_line() == "*** Welcome to chatd on lab. 0 users online."
    first.send_line("alice")
    assert first.read_line() == "*** Hello alice! Type /help for commands."
    assert connect().read_line() == "*** Welcome to chatd on lab. 1 user online."
    connect().login("bob")
    assert connect().read_line() == "*** Welcome to chatd on lab. 2 users online."


def test_a_whole_conversation(connect):
    """Join, public, b:, action, private, list, rename, //, errors, quit: exact lines, CR LF ends."""
    alice = connect().login("alice")
    bob = connect().login("bob")
    assert alice.read_raw_line() == b"*** bob has joined (2 users online)\r\n"
    carol = connect().login("carol")
    assert alice.read_line() == bob.read_line() == "*** carol has joined (3 users online)"

    alice.send_line("hello everyone")
    alice.send_line("b:plain text")
    alice.send_line("/me waves")
    alice.send_line("//slash at start")
    for reader in (bob, carol):
        assert reader.read_lines(4) == ["<alice> hello everyone", "<alice> plain text", "* alice waves", "<alice> /slash at start"]

    alice.send_line("/msg bob just you")
    alice.send_line("c:CAROL:and you: too")
    alice.send_line("/msg dave hello?")
    assert alice.read_lines(3) == ["-> *bob* just you", "-> *carol* and you: too", "*** Error: no such nick: dave"]
    assert bob.read_line() == "*alice* just you"
    assert carol.read_line() == "*alice* and you: too"

    for command in ("/list", "/who", "/names", "l"):
        bob.send_line(command)
        assert bob.read_line() == "*** 3 users online: alice, bob, carol"

    carol.send_line("/nick Zed")
    for reader in (alice, bob, carol):
        assert reader.read_line() == "*** carol is now known as Zed"
    carol.send_line("n:zed_")
    for reader in (alice, bob, carol):
        assert reader.read_line() == "*** Zed is now known as zed_"

    bob.send_line("/frobnicate")
    bob.send_line("/nick alice")
    assert bob.read_lines(2) == ["*** Error: unknown command /frobnicate (try /help)", "*** Error: nickname is taken: alice"]

    carol.send_line("/quit off to lunch")
    assert carol.read_line() == "*** Bye!"
    assert carol.read_until_closed() == b""
    assert alice.read_line() == bob.read_line() == "*** zed_ has left (off to lunch)"

    # Nothing else was sent to alice in between: no echo of her own messages.
    alice.send_line("/list")
    assert alice.read_line() == "*** 2 users online: alice, bob"


def test_command_words_are_case_insensitive_and_empty_lines_ignored(connect):
    """/NICK, B:, L, Quit and friends work in any case; blank lines do nothing."""
    alice = connect().login("alice")
    bob = connect().login("bob")
    alice.read_line()
    alice.send("\r\n   \r\n\r\n")
    alice.send_line("B:shout")
    alice.send_line("/ME bows")
    assert bob.read_lines(2) == ["<alice> shout", "* alice bows"]
    alice.send_line("L")
    assert alice.read_line() == "*** 2 users online: alice, bob"
    alice.send_line("/NICK Al")
    assert alice.read_line() == "*** alice is now known as Al"
    alice.send_line("HELP")
    assert alice.read_lines(len(HELP)) == list(HELP)
    alice.send_line("Quit")
    assert alice.read_line() == "*** Bye!"
    assert bob.read_lines(2) == ["*** alice is now known as Al", "*** Al has left (Quit)"]


@pytest.mark.parametrize("word", ["quit", "byebye", "/quit", "/QUIT"])
def test_every_quit_form_says_bye_and_closes(connect, word):
    """Each quit form: Bye to the user, the default reason Quit to the others."""
    alice = connect().login("alice")
    bob = connect().login("bob")
    alice.read_line()
    bob.send_line(word)
    assert bob.read_line() == "*** Bye!"
    assert bob.read_until_closed() == b""
    assert alice.read_line() == "*** bob has left (Quit)"


def test_help_is_one_line_per_command(connect):
    """/help and bare help give the same list."""
    alice = connect().login("alice")
    alice.send_line("/help")
    alice.send_line("help")
    assert alice.read_lines(2 * len(HELP)) == list(HELP) * 2


def test_invalid_nicknames_are_refused_and_the_prompt_repeats(connect):
    """Each refusal is one error line and the prompt again; then a good one joins."""
    client = connect()
    client.read_lines(2)
    for bad, reason in [
        ("9lives", "nickname may not start with a digit or -"),
        ("server", "nickname is reserved: server"),
        ("x" * 25, "nickname is too long (max 24 characters)"),
        ("a b", "nickname may not contain spaces: use letters, digits and _-[]{}|^"),
    ]:
        client.send_line(bad)
        assert client.read_lines(2) == [f"*** Error: {reason}", "*** Choose a nickname:"]
    client.send_line("张三")
    assert client.read_line() == "*** Hello 张三! Type /help for commands."


def test_taken_nickname_ignoring_case(connect):
    """ALICE is taken while alice is online."""
    connect().login("alice")
    client = connect()
    client.read_lines(2)
    client.send_line("ALICE")
    assert client.read_lines(2) == ["*** Error: nickname is taken: ALICE", "*** Choose a nickname:"]


def test_eof_leaves_with_quit_and_reset_with_connection_lost(connect):
    """A clean close is Quit; a reset (RST) is Connection lost."""
    alice = connect().login("alice")
    bob = connect().login("bob")
    carol = connect().login("carol")
    alice.read_lines(2)
    bob.sock.shutdown(socket.SHUT_WR)
    assert alice.read_line() == "*** bob has left (Quit)"
    carol.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    carol.close()
    assert alice.read_line() == "*** carol has left (Connection lost)"


def test_charset_gbk_round_trip(connect):
    """A GBK user types GBK and reads GBK; a UTF-8 user reads the same text in UTF-8."""
    alice = connect().login("alice")
    gbk = connect()
    gbk.read_lines(2)
    gbk.send_line("/charset gbk")
    assert gbk.read_line() == "*** Charset is now gbk"
    gbk.charset = "gbk"
    gbk.send_line("张三")
    assert gbk.read_line() == "*** Hello 张三! Type /help for commands."
    assert alice.read_line() == "*** 张三 has joined (2 users online)"
    gbk.send_line("大家好")
    assert alice.read_line() == "<张三> 大家好"
    alice.send_line("你好, 张三 ÿ")
    assert gbk.read_raw_line() == "<alice> 你好, 张三 ?\r\n".encode("gbk")
    gbk.send_line("/charset")
    assert gbk.read_line() == "*** Charset is gbk"
    gbk.send_line("/charset klingon")
    assert gbk.read_line() == "*** Error: unknown charset: klingon"


def test_undecodable_input_gives_one_hint(connect):
    """GBK bytes on a UTF-8 connection: a one-time hint, and U+FFFD to the others."""
    alice = connect().login("alice")
    bob = connect().login("bob")
    alice.read_line()
    bob.send(b"caf\xe9\r\n" + b"na\xefve\r\n")
    assert bob.read_line().startswith("*** Your input is not valid utf-8; type /charset NAME")
    assert alice.read_lines(2) == ["<bob> caf\ufffd", "<bob> na\ufffdve"]
    bob.send_line("/list")
    assert bob.read_line() == "*** 2 users online: alice, bob"  # no second hint


def test_injected_escape_sequences_never_reach_others(connect):
    """Colours, cursor moves, titles, bidi overrides and fake lines are cleaned away."""
    alice = connect().login("alice")
    bob = connect().login("bob")
    alice.read_line()
    bob.send("\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[31mred\x1b[0m \u202eevil\r\n".encode())
    bob.send(b"fake\r<alice> not really\r\n")
    assert alice.read_lines(3) == ["<bob> red evil", "<bob> fake", "<bob> <alice> not really"]


def test_line_of_exactly_max_is_accepted_and_one_more_byte_is_refused(connect):
    """4096 bytes: delivered. 4097: one error line, the line dropped, the connection fine."""
    alice = connect().login("alice")
    bob = connect().login("bob")
    alice.read_line()
    bob.send_line("x" * 4096)
    assert alice.read_line() == "<bob> " + "x" * 4096
    bob.send_line("y" * 4097)
    bob.send_line("after")
    assert bob.read_line() == "*** Error: line too long (max 4096 bytes)"
    assert alice.read_line() == "<bob> after"


def test_windows_telnet_negotiation_and_keystrokes(connect):
    """Windows telnet's opening is answered; single keystrokes are echoed, edited and assembled."""
    alice = connect().login("alice")
    win = connect()
    win.send(WINDOWS_TELNET_HELLO)
    assert win.read_lines(2) == ["*** Welcome to chatd on lab. 1 user online.", "*** Choose a nickname:"]
    assert win.read_exactly(len(WINDOWS_TELNET_ANSWER)) == WINDOWS_TELNET_ANSWER
    for key in b"bobx\x08\r\n":
        win.send(bytes([key]))
    hello = b"*** Hello bob! Type /help for commands.\r\n"
    assert win.read_until(hello) == b"bobx\x08 \x08\r\n" + hello
    assert alice.read_line() == "*** bob has joined (2 users online)"
    for key in b"hi":
        win.send(bytes([key]))
    assert win.read_exactly(2) == b"hi"
    alice.send_line("hello bob")
    redraw = b"\r\x1b[J<alice> hello bob\r\nhi"
    assert win.read_exactly(len(redraw)) == redraw
    win.send(b"!\r\n")
    assert alice.read_line() == "<bob> hi!"


def test_nothing_a_client_sends_crashes_the_server(connect):
    """A barrage of junk on one connection leaves the others working."""
    alice = connect().login("alice")
    junk = connect()
    junk.send(bytes(range(256)) * 20 + IAC + b"\xfa" + b"\x00" * 5000 + IAC + b"\xf0" + b"\xff\xff\r\x00\r\r\n")
    junk.send_line("junkie")
    assert alice.read_line() == "*** junkie has joined (2 users online)"
    alice.send_line("/list")
    assert alice.read_line() == "*** 2 users online: alice, junkie"


def test_taken_port_falls_back_and_says_so(tmp_path):
    """With the port held by another program, chatd lands on the next one and logs both lines."""
    first = free_port_run(2)
    port_file = tmp_path / "port"
    with occupied("127.0.0.1", first):
        server = ChatdProcess("--port", str(first), "--interface", "127.0.0.1", "--port-file", str(port_file), "--echo-port", "0", cwd=tmp_path)
        try:
            assert server.wait_for_log("is in use").endswith(f"port {first} on 127.0.0.1 is in use; trying {first + 1}")
            line = server.wait_for_log("chat room listening on")
            assert line.endswith(f"chat room listening on 127.0.0.1:{first + 1} ({first} was taken)")
            assert port_file.read_text() == f"{first + 1}\n"
            LineClient(first + 1).login("alice").close()
        finally:
            server.stop()


def run_twistd(*args, cwd):
    return subprocess.run(
        twistd_command(*args), cwd=cwd, env=environment(), capture_output=True, text=True, timeout=TIMEOUT_SECONDS * 3
    )


def test_every_port_taken_exits_1_with_one_line(tmp_path):
    """No free candidate: status 1, one line naming the interface and each port, no traceback."""
    first = free_port_run(3)
    with occupied("127.0.0.1", first), occupied("127.0.0.1", first + 1), occupied("127.0.0.1", first + 2):
        result = run_twistd("--port", str(first), "--interface", "127.0.0.1", "--fallback", "2", "--echo-port", "0", cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if "#error]" in line]
    assert len(errors) == 1
    assert errors[0].endswith(f"cannot listen on 127.0.0.1: every port tried is taken ({first}-{first + 2})")
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "70000"], "--port: '70000' is not a port number (0-65535)"),
        (["--fallback", "9-3"], "--fallback: range 9-3 runs backwards"),
        (["--charset", "klingon"], "--charset: unknown charset: klingon (try utf-8, gbk, big5, latin-1)"),
        (["--transcript", "missing/room.jsonl"], "--transcript: cannot open missing/room.jsonl: No such file or directory"),
        (["--transcript", "."], "--transcript: cannot open .: Is a directory"),
        (["--bogus"], "option --bogus not recognized"),
    ],
)
def test_bad_options_stop_twistd_with_one_line_and_no_traceback(tmp_path, args, message):
    """twistd exits with status 2 at once and one line on stderr naming the option and the problem; no usage text."""
    result = run_twistd(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"chatd: {message} (twistd chatd --help lists the options)\n"
    assert result.stdout == ""


def test_a_config_file_configures_the_real_server_and_the_command_line_wins(tmp_path):
    """twistd -n chatd --config FILE: the file's name, interface, port file and doors are used; --name wins."""
    port_file = tmp_path / "port"
    config = tmp_path / "chatd.toml"
    config.write_text(f'interface = "127.0.0.1"\nport = 0\nport-file = "{port_file}"\nname = "from the file"\n'
                      'no-web = true\nno-irc = true\nno-echo = true\ncharset = "latin-1"\n')
    server = ChatdProcess("--config", str(config), "--name", "lab", cwd=tmp_path)
    try:
        server.wait_for_log("chat room listening on 127.0.0.1:")
        client = LineClient(int(port_file.read_text()))
        client.charset = "latin-1"
        assert client.read_lines(2) == ["*** Welcome to chatd on lab. 0 users online.", "*** Choose a nickname:"]
        assert not any("web page listening" in line or "IRC listening" in line for line in server.log)
        client.close()
    finally:
        server.stop()


def test_a_bad_config_file_stops_twistd_with_one_line_naming_the_file_and_the_key(tmp_path):
    """--config with a typo: exit status 2 and one line naming the file, the key and why; nothing listens."""
    config = tmp_path / "chatd.toml"
    config.write_text('interface = "127.0.0.1"\nprot = 8088\n')
    result = run_twistd("--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"chatd: {config}: prot: not an option of chatd (twistd chatd --help lists the options)\n"
    assert result.stdout == ""


def test_help_lists_every_option_with_its_default(tmp_path):
    """`twistd chatd --help` names each option and shows its default."""
    result = run_twistd("--help", cwd=tmp_path)
    text = " ".join(result.stdout.split())
    for option, default in [
        ("--port=", "[default: 8088]"), ("--interface=", "[default: 0.0.0.0]"), ("--fallback=", "[default: 10]"),
        ("--port-file=", None), ("--name=", "[default: the host name]"), ("--max-line=", "[default: 4096]"),
        ("--charset=", "[default: utf-8]"),
    ]:
        assert option in text
        if default:
            assert default in text


def test_a_half_closed_client_still_gets_what_was_queued_for_it(connect):
    """Lines then EOF (like nc at the end of its input): the answers still arrive, then the close."""
    alice = connect().login("alice")
    bob = connect().login("bob")
    alice.read_line()
    bob.send("/list\r\n/help\r\nbye now")
    bob.sock.shutdown(socket.SHUT_WR)
    rest = bob.read_until_closed().decode()
    assert rest.startswith("*** 2 users online: alice, bob\r\n*** Commands:\r\n")
    assert rest.count("\r\n") == 1 + len(HELP)
    assert alice.read_lines(2) == ["<bob> bye now", "*** bob has left (Quit)"]


def test_a_web_browser_gets_a_hint_not_a_hang(chatd):
    """An HTTP request gets one plain line saying how to connect, then the connection closes."""
    _, port = chatd
    browser = LineClient(port)
    browser.read_lines(2)
    browser.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert browser.read_until_closed() == (
        f"This is chatd, a telnet chat server, not an HTTP server. Connect with: telnet 127.0.0.1 {port}\r\n".encode()
    )


def test_a_reader_that_never_reads_is_dropped_and_nobody_else_loses_a_line(tmp_path):
    """bob never reads: he is dropped with 'Send queue exceeded'; carol gets every line; alice is never slowed."""
    port_file = tmp_path / "port"
    server = ChatdProcess(
        "--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--echo-port", "0",
        "--sendq", "65536", "--rate", "100000", "--burst", "100000", "--flood-queue", "100000",
        cwd=tmp_path,
    )
    try:
        server.wait_for_log("chat room listening on")
        port = int(port_file.read_text())
        alice = LineClient(port).login("alice")
        bob = socket.socket()
        bob.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        bob.connect(("127.0.0.1", port))
        bob.sendall(b"bob\r\n")
        carol = LineClient(port).login("carol")
        assert alice.read_lines(2) == ["*** bob has joined (2 users online)", "*** carol has joined (3 users online)"]
        payload = "x" * 1000
        received, left = [], []
        # 200 x 50 lines of 1 KB: 10 MB, more than the kernel keeps for bob
        # (its send buffer grows to tcp_wmem's 4 MB) plus --sendq.
        for batch in range(200):
            alice.send("".join(f"{batch * 50 + index} {payload}\r\n" for index in range(50)))
            while len(received) < (batch + 1) * 50:
                line = carol.read_line()
                (left if line.startswith("***") else received).append(line)
        assert received == [f"<alice> {index} {payload}" for index in range(10000)]
        assert left == ["*** bob has left (Send queue exceeded)"]
        assert server.wait_for_log("behind; dropping it")
        bob.close()
    finally:
        server.stop()


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_shutdown_tells_everyone_flushes_and_exits_0(tmp_path, signal_number):
    """On SIGTERM, SIGINT or (in the foreground) SIGHUP: everyone, joined or not, gets the notice; connections close; status 0."""
    port_file = tmp_path / "port"
    server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--echo-port", "0", cwd=tmp_path)
    server.wait_for_log("chat room listening on")
    port = int(port_file.read_text())
    alice = LineClient(port).login("alice")
    lurker = LineClient(port)
    lurker.read_lines(2)
    assert server.stop(signal_number) == 0
    assert alice.read_until_closed() == b"*** Server shutting down\r\n"
    assert lurker.read_until_closed() == b"*** Server shutting down\r\n"
    assert any(f"received {signal.Signals(signal_number).name}; shutting down" in line for line in server.log)
    assert not port_file.exists()


def test_transcript_survives_kill_9_and_history_survives_a_restart(tmp_path):
    """Public events are in the transcript as they happen (kill -9 loses none); after a restart, joiners get history."""
    transcript = tmp_path / "room.jsonl"
    port_file = tmp_path / "port"
    args = ("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--echo-port", "0",
            "--transcript", str(transcript), "--history", "2")
    server = ChatdProcess(*args, cwd=tmp_path)
    server.wait_for_log("chat room listening on")
    alice = LineClient(int(port_file.read_text())).login("alice")
    bob = LineClient(int(port_file.read_text())).login("bob")
    alice.read_line()
    alice.send_line("first")
    assert bob.read_line() == "<alice> first"
    alice.send_line("/msg bob a secret")
    assert alice.read_line() == "-> *bob* a secret"
    assert bob.read_line() == "*alice* a secret"
    bob.send_line("/me waves")
    assert alice.read_line() == "* bob waves"
    alice.send_line("third")
    assert bob.read_line() == "<alice> third"
    server.process.kill()  # no chance to flush or close anything
    server.process.wait(TIMEOUT_SECONDS)
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [(record["event"], record.get("text")) for record in records] == [
        ("joined", None), ("joined", None), ("said", "first"), ("acted", "waves"), ("said", "third"),
    ]
    assert "secret" not in transcript.read_text()

    port_file.unlink()
    restarted = ChatdProcess(*args, cwd=tmp_path)
    try:
        restarted.wait_for_log("chat room listening on")
        carol = LineClient(int(port_file.read_text()))
        carol.read_lines(2)
        carol.send_line("carol")
        lines = carol.read_lines(5)
        assert lines[0] == "*** Hello carol! Type /help for commands."
        assert lines[1] == "*** Recent messages:"
        assert lines[2].endswith("] * bob waves") and lines[3].endswith("] <alice> third")
        assert lines[4] == "*** End of recent messages"
    finally:
        restarted.stop()


def test_an_operator_kicks_and_bans_over_real_connections(tmp_path):
    """--oper-password-file, /oper, /kick, /ban: the banned address cannot come back."""
    (tmp_path / "oper").write_text("s3cret\n")
    port_file = tmp_path / "port"
    server = ChatdProcess("--port", "0", "--port-file", str(port_file), "--echo-port", "0",
                          "--oper-password-file", str(tmp_path / "oper"), cwd=tmp_path)
    try:
        server.wait_for_log("chat room listening on")
        port = int(port_file.read_text())
        op = LineClient(port, source="127.0.0.1").login("op")
        bob = LineClient(port, source="127.0.0.2").login("bob")
        assert op.read_line() == "*** bob has joined (2 users online)"
        op.send_line("/oper s3cret")
        assert op.read_line() == "*** You are now an operator"
        op.send_line("/ban bob 0")
        assert op.read_lines(2) == ["*** Banned 127.0.0.2 until restart", "*** bob has left (Banned by op)"]
        assert bob.read_until_closed() == b"*** Error: you are banned from this server\r\n"
        again = LineClient(port, source="127.0.0.2")
        assert again.read_until_closed() == b"*** Error: you are banned from this server\r\n"
    finally:
        server.stop()
