"""
The chat page's memory in headless Chromium against the real `twistd -n
chatd` and its store: registering on the page, the password it asks for,
unread counts that follow a registered user to another browser, older
lines on scrolling up, links that are links and nothing else that is,
and the walk a new user takes (registered on the page, away while a
telnet user leaves a message and a mention, back from irssi with SASL).
"""

from __future__ import annotations

import re
import sqlite3

import pexpect
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait

from tests.chatd_process import ChatdProcess, LineClient
from tests.e2e.test_browser import DESKTOP, chromium, type_into, wait_for_line
from tests.e2e.test_irssi import irssi_with_sasl

PASSWORD = "tea and biscuits"


@pytest.fixture
def chatd(tmp_path):
    port_file = tmp_path / "port"
    process = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", "lab",
                           "--no-echo", "--state-dir", str(tmp_path / "state"), "--rate", "1000", cwd=tmp_path)
    try:
        process.wait_for_log("chat room listening on")
        irc_port = int(process.wait_for_log("IRC listening on").rsplit(":", 1)[1])
        web_line = process.wait_for_log("web page listening on")
        yield (int(port_file.read_text()), int(re.search(r":(\d+)$", web_line.strip()).group(1)), irc_port,
               process)
    finally:
        process.stop()


def visible(browser, element_id):
    return WebDriverWait(browser, 10).until(shown.visibility_of_element_located((By.ID, element_id)))


def register_on_the_page(browser, web_port, nick):
    browser.get(f"http://127.0.0.1:{web_port}/")
    visible(browser, "nick")
    type_into(browser, "nick", nick)
    visible(browser, "register-password")
    type_into(browser, "register-password", PASSWORD)
    wait_for_line(browser, f"{nick} is registered to you now")
    WebDriverWait(browser, 10).until(lambda page: not page.find_element(By.ID, "register-form").is_displayed())


def log_in_on_the_page(browser, web_port, nick, password):
    browser.get(f"http://127.0.0.1:{web_port}/")
    visible(browser, "nick")
    type_into(browser, "nick", nick)
    label = visible(browser, "password")
    assert browser.find_element(By.ID, "password-label").text == f"{nick} is registered: its password"
    type_into(browser, "password", password)
    return label


def test_the_page_registers_then_asks_for_the_password_and_unread_counts_follow(chatd, tmp_path):
    """
    Registered on the page; in another browser (a new device) the nickname
    asks for its password (a wrong one is refused); the unread lines of a
    channel read in the first browser are counted in the second.
    """
    port, web_port, _, server = chatd
    bob = LineClient(port).login("bob")
    first = chromium(tmp_path / "first", DESKTOP)
    try:
        register_on_the_page(first, web_port, "alice")
        type_into(first, "say", "/join #lab")
        server.wait_for_log("alice joined #lab")
        WebDriverWait(first, 10).until(lambda page: _read_marks(tmp_path) == 1)  # 2 s after #lab is shown
    finally:
        first.quit()
    server.wait_for_log("alice left")
    bob.send_line("/join #lab")
    bob.read_until(b"*** You joined #lab")
    bob.send_line("first while away")
    bob.send_line("second while away")
    bob.send_line("/topic")  # answered once both lines are said (and handed to the store)
    bob.read_until(b"#lab has no topic")
    second = chromium(tmp_path / "second", DESKTOP)
    try:
        log_in_on_the_page(second, web_port, "alice", "not the password")
        WebDriverWait(second, 10).until(lambda page: "wrong password for alice" in page.find_element(
            By.ID, "login-error").text)
        type_into(second, "password", PASSWORD)
        visible(second, "say")
        assert "#lab (2)" in wait_for_line(second, "Unread since you last read them").text
    finally:
        second.quit()


def _read_marks(tmp_path):
    """How many read marks of #lab the store's file holds (read with SQLite itself)."""
    with sqlite3.connect(tmp_path / "state" / "chatd.sqlite3") as kept:
        return kept.execute("SELECT count(*) FROM read_marks WHERE channel = '#lab'").fetchone()[0]


def test_links_are_links_and_nothing_else_becomes_html(chatd, tmp_path):
    """An http(s) address is a link opening a new tab without an opener; javascript: and markup stay text."""
    port, web_port, _, _ = chatd
    bob = LineClient(port).login("bob")
    browser = chromium(tmp_path, DESKTOP)
    try:
        browser.get(f"http://127.0.0.1:{web_port}/")
        visible(browser, "nick")
        type_into(browser, "nick", "alice")
        visible(browser, "say")
        bob.send_line('see https://example.org/a?b=1&c=2#top, javascript:alert(1) <a href="x">x</a> '
                      'http://"onmouseover=alert(1)// <img src=x onerror=alert(1)>.')
        item = wait_for_line(browser, "see ")
        links = item.find_elements(By.TAG_NAME, "a")
        assert [(link.get_attribute("href"), link.text, link.get_attribute("target"), link.get_attribute("rel"))
                for link in links] == [("https://example.org/a?b=1&c=2#top", "https://example.org/a?b=1&c=2#top",
                                        "_blank", "noopener noreferrer")]
        assert not item.find_elements(By.TAG_NAME, "img")
        assert "javascript:alert(1) <a href=\"x\">x</a>" in item.text
    finally:
        browser.quit()


def test_scrolling_up_shows_older_lines_from_the_store(chatd, tmp_path):
    """A channel with more lines than a join shows: scrolled to the top, the page asks for and shows older ones."""
    port, web_port, _, _ = chatd
    bob = LineClient(port).login("bob")
    for number in range(80):
        bob.send_line(f"line {number:02}")
    bob.send_line("/topic")
    bob.read_until(b"has no topic")
    browser = chromium(tmp_path, DESKTOP)
    try:
        browser.get(f"http://127.0.0.1:{web_port}/")
        visible(browser, "nick")
        type_into(browser, "nick", "alice")
        wait_for_line(browser, "line 79")
        assert not any("line 00" in item.text for item in browser.find_elements(By.CSS_SELECTOR, "#messages li"))
        def texts():
            return [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#messages li") if "line " in item.text]

        for _ in range(5):  # each scroll to the top asks for 50 more lines, and they come above
            shown_before = len(texts())
            if any("line 00" in text for text in texts()):
                break
            browser.execute_script("document.getElementById('messages').scrollTop = 0;"
                                   "document.getElementById('messages').dispatchEvent(new Event('scroll'));")
            WebDriverWait(browser, 10).until(lambda page: len(texts()) > shown_before)
        texts = texts()
        numbers = [int(text.rsplit("line ", 1)[1]) for text in texts]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers) == 80
    finally:
        browser.quit()


def test_a_new_user_registers_on_the_page_and_comes_back_from_irssi_to_a_note_and_a_mention(chatd, tmp_path):
    """
    The issue's walk: alice registers on the web page and closes it; bob,
    on telnet, leaves her a message and names her in #lobby; alice comes
    back from irssi with SASL PLAIN and is shown both.
    """
    port, web_port, irc_port, server = chatd
    browser = chromium(tmp_path, DESKTOP)
    try:
        register_on_the_page(browser, web_port, "alice")
    finally:
        browser.quit()
    server.wait_for_log("alice left")
    bob = LineClient(port).login("bob")
    bob.send_line("/msg alice your parcel is at the desk")
    assert bob.read_line() == "*** alice is away; they get your message when they log in"
    bob.send_line("alice, are you coming on Friday?")
    irssi = irssi_with_sasl(tmp_path, irc_port, "alice", PASSWORD)
    try:
        assert bob.read_line() == "*** alice has joined (2 users online)"
        irssi.expect_exact("1 message while you were away:")
        irssi.expect_exact("<bob> your parcel is at the desk")
        irssi.expect_exact("You were mentioned once in #lobby since you left")
        irssi.send("/quit\r")
        irssi.expect(pexpect.EOF)
    finally:
        irssi.close(force=True)
        bob.close()
