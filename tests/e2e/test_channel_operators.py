"""
A channel's operators on every door, tried as a new user would, against the
real `twistd -n chatd`: an operator on the web page (headless Chromium), one
on telnet and one in Debian's irssi each set a key, kick, ban and invite,
and the users they do it to, on another door, see each step.
"""

from __future__ import annotations

import re
import shutil

import pexpect
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait

from tests.chatd_process import TIMEOUT_SECONDS, ChatdProcess, LineClient
from tests.e2e.test_browser import DESKTOP, chromium, type_into, wait_for_line


@pytest.fixture
def server(tmp_path):
    port_file = tmp_path / "port"
    process = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file),
                           "--name", "lab", "--no-echo", cwd=tmp_path)
    try:
        process.wait_for_log("chat room listening on")
        irc_port = int(process.wait_for_log("IRC listening on").rsplit(":", 1)[1])
        web_line = process.wait_for_log("web page listening on")
        yield process, int(port_file.read_text()), int(re.search(r":(\d+)$", web_line.strip()).group(1)), irc_port
    finally:
        process.stop()


def open_page(tmp_path, web_port, nick):
    browser = chromium(tmp_path, DESKTOP)
    browser.get(f"http://127.0.0.1:{web_port}/")
    WebDriverWait(browser, 10).until(shown.visibility_of_element_located((By.ID, "nick")))
    type_into(browser, "nick", nick)
    WebDriverWait(browser, 10).until(shown.visibility_of_element_located((By.ID, "say")))
    return browser


def in_channel(browser, name):
    WebDriverWait(browser, 10).until(shown.text_to_be_present_in_element((By.ID, "channel-name"), name))


def test_an_operator_on_the_web_page_sets_a_key_kicks_bans_and_invites(server, tmp_path):
    """alice makes #web on the page; bob, on telnet, meets her key, her kick, her ban and her invitation."""
    process, port, web_port, _ = server
    bob = LineClient(port).login("bob")
    browser = open_page(tmp_path, web_port, "alice")
    try:
        assert bob.read_line() == "*** alice has joined (2 users online)"
        type_into(browser, "say", "/join #web")
        in_channel(browser, "#web")
        WebDriverWait(browser, 10).until(shown.text_to_be_present_in_element((By.ID, "member-list"), "@alice"))
        type_into(browser, "say", "/mode +k solder")
        wait_for_line(browser, "alice sets mode +k solder")
        bob.send_line("/join #web")
        assert bob.read_line() == "*** Error: #web has a key: /join #web KEY"
        bob.send_line("/join #web solder")
        assert bob.read_line() == "*** You joined #web (2 users)"
        type_into(browser, "say", "/kick #web bob enough")
        assert bob.read_line() == "*** bob was kicked from #web by alice (enough)"
        wait_for_line(browser, "bob was kicked by alice (enough)")
        type_into(browser, "say", "/ban #web bob")
        wait_for_line(browser, "alice sets mode +b bob!*@*")
        bob.read_until(b"*** Now talking in #lobby\r\n")
        bob.send_line("/join #web solder")
        assert bob.read_line() == "*** Error: you are banned from #web"
        type_into(browser, "say", "/unban #web bob")
        type_into(browser, "say", "/mode +i")
        wait_for_line(browser, "alice sets mode +i")
        bob.send_line("/join #web solder")
        assert bob.read_line() == "*** Error: #web is invite only: an operator of it may /invite you"
        type_into(browser, "say", "/invite bob")
        wait_for_line(browser, "You invited bob into #web")
        assert bob.read_line() == "*** alice invites you into #web (/join #web)"
        bob.send_line("/join #web")
        assert bob.read_line() == "*** You joined #web (2 users)"
        WebDriverWait(browser, 10).until(shown.text_to_be_present_in_element((By.ID, "member-list"), "bob"))
    finally:
        browser.quit()
        bob.close()


def test_an_operator_on_telnet_sets_a_key_kicks_bans_and_invites(server, tmp_path):
    """bob makes #tel on telnet; alice, on the page, is asked for the key, kicked, banned and invited."""
    process, port, web_port, _ = server
    bob = LineClient(port).login("bob")
    bob.send_line("/join #tel")
    assert bob.read_line() == "*** You joined #tel (1 user)"
    bob.send_line("/mode #tel +k solder")
    assert bob.read_line() == "*** bob sets mode +k solder on #tel"
    browser = open_page(tmp_path, web_port, "alice")
    try:
        type_into(browser, "say", "/join #tel")
        key = WebDriverWait(browser, 10).until(
            lambda page: next(iter(page.find_elements(By.CSS_SELECTOR, ".key-form input")), False))
        key.send_keys("solder", Keys.ENTER)
        in_channel(browser, "#tel")
        WebDriverWait(browser, 10).until(shown.text_to_be_present_in_element((By.ID, "member-list"), "@bob"))
        bob.read_until(b"*** alice has joined (2 users)\r\n")
        bob.send_line("/kick #tel alice not now")
        wait_for_line(browser, "You were kicked from #tel by bob (not now)")
        in_channel(browser, "#lobby")
        bob.read_until(b"*** alice was kicked from #tel by bob (not now)\r\n")
        bob.send_line("/ban #tel *!*@127.0.0.1")
        assert bob.read_line() == "*** bob sets mode +b *!*@127.0.0.1 on #tel"
        type_into(browser, "say", "/join #tel solder")
        wait_for_line(browser, "you are banned from #tel")
        bob.send_line("/unban #tel *!*@127.0.0.1")
        bob.read_line()
        bob.send_line("/mode #tel +i")
        bob.read_line()
        bob.send_line("/invite alice")
        assert bob.read_line() == "*** You invited alice into #tel"
        join = WebDriverWait(browser, 10).until(
            lambda page: next((button for button in page.find_elements(By.CSS_SELECTOR, "#messages button")
                               if button.text == "Join #tel"), False))
        join.click()
        in_channel(browser, "#tel")
        assert bob.read_line() == "*** alice has joined (2 users)"
    finally:
        browser.quit()
        bob.close()


def test_an_operator_in_irssi_sets_a_key_kicks_bans_and_invites(server, tmp_path):
    """carol makes #irc in Debian's irssi, typing its own commands; dave, on telnet, meets each of them."""
    process, port, _, irc_port = server
    irssi_path = shutil.which("irssi")
    if irssi_path is None:
        pytest.fail("irssi is not installed; make test installs it (see TEST_PROGRAMS in the Makefile)")
    home = tmp_path / "irssi"
    home.mkdir()
    (home / "config").write_text('settings = { "irc/core" = { cmd_queue_speed = "0msec"; max_cmds_at_once = "100"; }; };\n')
    dave = LineClient(port).login("dave")
    irssi = pexpect.spawn(irssi_path, ["--home", str(home), "-c", "127.0.0.1", "-p", str(irc_port), "-n", "carol"],
                          timeout=TIMEOUT_SECONDS, encoding="utf-8", dimensions=(40, 160), env={"TERM": "xterm"})
    try:
        assert dave.read_line() == "*** carol has joined (2 users online)"
        irssi.send("/join #irc\r")
        process.wait_for_log("carol joined #irc")
        irssi.send("/mode #irc +k solder\r")
        process.wait_for_log("carol set #irc +k solder")
        dave.send_line("/join #irc")
        assert dave.read_line() == "*** Error: #irc has a key: /join #irc KEY"
        dave.send_line("/join #irc solder")
        assert dave.read_line() == "*** You joined #irc (2 users)"
        irssi.expect_exact("dave")
        irssi.send("/kick dave enough\r")  # irssi's /kick: from the channel of the window
        assert dave.read_line() == "*** dave was kicked from #irc by carol (enough)"
        dave.read_until(b"*** Now talking in #lobby\r\n")
        dave.send_line("/join #irc solder")
        assert dave.read_line() == "*** You joined #irc (2 users)"
        # irssi's /kickban: a ban on the mask it makes (its ban_type) from its nick list's dave!dave@chatd, then a kick.
        irssi.send("/kickban dave bye\r")
        assert re.fullmatch(r"\*\*\* carol sets mode \+b \S+@chatd on #irc", dave.read_line())
        assert dave.read_line() == "*** dave was kicked from #irc by carol (bye)"
        dave.read_until(b"*** Now talking in #lobby\r\n")
        dave.send_line("/join #irc solder")
        assert dave.read_line() == "*** Error: you are banned from #irc"
        irssi.send("/unban *\r")
        process.wait_for_log("carol set #irc -b")
        irssi.send("/mode #irc +i\r")
        process.wait_for_log("carol set #irc +i")
        irssi.send("/invite dave\r")
        assert dave.read_line() == "*** carol invites you into #irc (/join #irc)"
        dave.send_line("/join #irc")
        assert dave.read_line() == "*** You joined #irc (2 users)"
        irssi.send("/quit\r")
        irssi.expect(pexpect.EOF)
    finally:
        irssi.close(force=True)
        dave.close()
