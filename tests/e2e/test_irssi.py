"""
A real IRC client against the real server: Debian's irssi, driven through a
pseudo-terminal with pexpect as a person would type, chatting with a
telnet-style client in the same channels.
"""

import shutil

import pexpect
import trustme
import pytest
from tests.chatd_process import TIMEOUT_SECONDS, ChatdProcess, LineClient


@pytest.fixture
def ports(tmp_path):
    port_file = tmp_path / "port"
    server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", "lab",
                          "--no-echo", "--no-web", cwd=tmp_path)
    try:
        server.wait_for_log("chat room listening on")
        irc_port = int(server.wait_for_log("IRC listening on").rsplit(":", 1)[1])
        yield int(port_file.read_text()), irc_port, server
    finally:
        server.stop()


def test_irssi_connects_registers_joins_chats_and_quits(ports, tmp_path):
    """Debian's irssi, typed at as a person would, registers, joins, chats with a telnet user and quits."""
    port, irc_port, server = ports
    irssi_path = shutil.which("irssi")
    if irssi_path is None:
        pytest.fail("irssi is not installed; make test installs it (see TEST_PROGRAMS in the Makefile)")
    bob = LineClient(port).login("bob")
    home = tmp_path / "irssi"
    home.mkdir()
    # irssi's flood protection holds commands back 2.2 s each after a few: off, so the test does not wait on it.
    (home / "config").write_text('settings = { "irc/core" = { cmd_queue_speed = "0msec"; max_cmds_at_once = "100"; }; };\n')
    irssi = pexpect.spawn(irssi_path, ["--home", str(home), "-c", "127.0.0.1", "-p", str(irc_port),
                                       "-n", "alice"],
                          timeout=TIMEOUT_SECONDS, encoding="utf-8", dimensions=(40, 160), env={"TERM": "xterm"})
    try:
        assert bob.read_line() == "*** alice has joined (2 users online)"  # registered, and in #lobby
        server.wait_for_log("alice joined (2 online)")
        irssi.send("/join #lab\r")
        server.wait_for_log("alice joined #lab")
        bob.send_line("/join #lab")
        assert bob.read_line() == "*** You joined #lab (2 users)"
        irssi.send("hello from irssi\r")
        assert bob.read_line() == "<alice> hello from irssi"
        bob.send_line("hello from telnet")
        irssi.expect_exact("hello from telnet")
        irssi.send("/me waves\r")
        assert bob.read_line() == "* alice waves"
        irssi.send("/quit bye for now\r")
        assert bob.read_line() == "*** alice has left (bye for now)"
        irssi.expect(pexpect.EOF)
    finally:
        irssi.close(force=True)
        bob.close()


def test_irssi_over_tls_verifies_the_operators_certificate_and_chats(tmp_path):
    """
    irssi with TLS (its server entry `use_tls`, verifying against the test's
    own CA, as `/connect -tls -tls_cafile` does) connects to the IRC port
    over TLS, joins and chats with a plain telnet user.  (irssi matches only
    DNS names of the certificate, so it connects to "localhost".)
    """
    irssi_path = shutil.which("irssi")
    if irssi_path is None:
        pytest.fail("irssi is not installed; make test installs it (see TEST_PROGRAMS in the Makefile)")
    ca = trustme.CA()
    issued = ca.issue_cert("localhost", "127.0.0.1")
    issued.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "certificate.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    port_file = tmp_path / "port"
    server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", "lab",
                          "--no-echo", "--no-web", "--tls-cert", str(tmp_path / "certificate.pem"),
                          "--tls-key", str(tmp_path / "key.pem"), cwd=tmp_path)
    try:
        server.wait_for_log("chat room listening on")
        tls_port = int(server.wait_for_log("IRC over TLS listening on").rsplit(":", 1)[1])
        bob = LineClient(int(port_file.read_text())).login("bob")
        home = tmp_path / "irssi"
        home.mkdir()
        (home / "config").write_text(
            'servers = ( { address = "localhost"; chatnet = "lab"; port = "%d"; use_tls = "yes"; tls_verify = "yes";'
            ' tls_cafile = "%s"; autoconnect = "yes"; } );\n'
            'chatnets = { lab = { type = "IRC"; }; };\n'
            'settings = { core = { nick = "alice"; real_name = "Alice"; user_name = "alice"; };'
            ' "irc/core" = { cmd_queue_speed = "0msec"; max_cmds_at_once = "100"; }; };\n'
            % (tls_port, tmp_path / "ca.pem"))
        irssi = pexpect.spawn(irssi_path, ["--home", str(home)], timeout=TIMEOUT_SECONDS, encoding="utf-8",
                              dimensions=(40, 160), env={"TERM": "xterm"})
        try:
            assert bob.read_line() == "*** alice has joined (2 users online)"
            irssi.send("/join #lobby\r")
            irssi.send("hello over TLS from irssi\r")
            assert bob.read_line() == "<alice> hello over TLS from irssi"
            bob.send_line("hello from telnet")
            irssi.expect_exact("hello from telnet")
            irssi.send("/quit\r")
            irssi.expect(pexpect.EOF)
        finally:
            irssi.close(force=True)
            bob.close()
    finally:
        server.stop()


def irssi_with_sasl(tmp_path, irc_port, nick, password):
    """
    Debian's irssi, configured for SASL PLAIN as its documentation says
    (the chatnet's sasl_mechanism, sasl_username and sasl_password),
    connecting at once to chatd's IRC port as `nick`.
    """
    irssi_path = shutil.which("irssi")
    if irssi_path is None:
        pytest.fail("irssi is not installed; make test installs it (see TEST_PROGRAMS in the Makefile)")
    home = tmp_path / "irssi"
    home.mkdir()
    (home / "config").write_text(f"""
settings = {{ "irc/core" = {{ cmd_queue_speed = "0msec"; max_cmds_at_once = "100"; }}; }};
chatnets = {{ lab = {{ type = "IRC"; sasl_mechanism = "PLAIN"; sasl_username = "{nick}";
                       sasl_password = "{password}"; }}; }};
servers = ( {{ address = "127.0.0.1"; port = "{irc_port}"; chatnet = "lab"; autoconnect = "yes"; }} );
""")
    return pexpect.spawn(irssi_path, ["--home", str(home), "-n", nick], timeout=TIMEOUT_SECONDS, encoding="utf-8",
                         dimensions=(40, 160), env={"TERM": "xterm"})


def test_irssi_with_sasl_comes_back_to_a_message_and_a_mention(tmp_path):
    """
    alice registered her nickname; while she is away a telnet user leaves
    her a message and names her in #lobby; Debian's irssi, configured for
    SASL PLAIN as its documentation says (the chatnet's sasl_mechanism,
    sasl_username and sasl_password), logs in as alice and shows both.
    """
    port_file = tmp_path / "port"
    server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", "lab",
                          "--no-echo", "--no-web", "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    try:
        server.wait_for_log("chat room listening on")
        irc_port = int(server.wait_for_log("IRC listening on").rsplit(":", 1)[1])
        port = int(port_file.read_text())
        alice = LineClient(port).login("alice")
        alice.send_line("/register tea and biscuits")
        alice.read_until(b"is registered to you now")
        alice.close()
        server.wait_for_log("alice left")
        bob = LineClient(port).login("bob")
        bob.send_line("/msg alice the printer works again")
        assert bob.read_line() == "*** alice is away; they get your message when they log in"
        bob.send_line("is alice coming to lunch?")
        irssi = irssi_with_sasl(tmp_path, irc_port, "alice", "tea and biscuits")
        try:
            assert bob.read_line() == "*** alice has joined (2 users online)"  # as alice, not a guest
            irssi.expect_exact("1 message while you were away:")
            irssi.expect_exact("<bob> the printer works again")
            irssi.expect_exact("You were mentioned once in #lobby since you left")
            irssi.send("/quit\r")
            irssi.expect(pexpect.EOF)
        finally:
            irssi.close(force=True)
            bob.close()
    finally:
        server.stop()
