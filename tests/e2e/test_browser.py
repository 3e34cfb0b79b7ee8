"""
The chat page in a real browser: Debian's headless Chromium, driven by
selenium through chromedriver, against the real `twistd -n chatd`, with a
telnet-style client on the other side.  Waits are for what the page shows
(WebDriverWait), never sleeps.  Screenshots of a phone-sized and a
desktop-sized window are saved in the test's temporary directory.
"""

import base64
import hashlib
import re
import shutil

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import pytest
from tests.chatd_process import ChatdProcess, LineClient
from tests.conftest import free_port_run
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait

XSS = "<img src=x onerror=alert(1)>"
PHONE = (390, 844)
DESKTOP = (1280, 800)


def chromium(tmp_path, size, *flags):
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    # Headless, and never reaching beyond loopback.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / f'chromium-{size[0]}'}", f"--window-size={size[0]},{size[1]}", *flags):
        options.add_argument(flag)
    # An explicit chromedriver: selenium then never looks for (or downloads) one.
    return webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))


@pytest.fixture
def server(tmp_path):
    port_file = tmp_path / "port"
    process = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file),
                           "--name", "lab", "--no-echo", cwd=tmp_path)
    try:
        process.wait_for_log("chat room listening on")
        web_line = process.wait_for_log("web page listening on")
        yield int(port_file.read_text()), int(re.search(r":(\d+)$", web_line.strip()).group(1))
    finally:
        process.stop()


def wait_for_line(browser, text):
    """The message line on the page that contains `text`."""
    return WebDriverWait(browser, 10).until(
        lambda page: next((item for item in page.find_elements(By.CSS_SELECTOR, "#messages li")
                           if text in item.text), False))


def type_into(browser, element_id, text):
    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text, Keys.ENTER)


def test_a_browser_user_chats_with_a_telnet_user(server, tmp_path):
    """In headless Chromium, a user logs in on the page, joins a channel and chats with a telnet user both ways."""
    port, web_port = server
    bob = LineClient(port).login("bob")
    browser = chromium(tmp_path, DESKTOP)
    try:
        browser.get(f"http://127.0.0.1:{web_port}/")
        WebDriverWait(browser, 10).until(shown.visibility_of_element_located((By.ID, "nick")))
        type_into(browser, "nick", "alice")
        WebDriverWait(browser, 10).until(shown.visibility_of_element_located((By.ID, "say")))
        assert bob.read_line() == "*** alice has joined (2 users online)"

        type_into(browser, "say", "/join #lab")
        WebDriverWait(browser, 10).until(shown.text_to_be_present_in_element((By.ID, "channel-name"), "#lab"))
        bob.send_line("/join lab")
        assert bob.read_line() == "*** You joined #lab (2 users)"
        WebDriverWait(browser, 10).until(shown.text_to_be_present_in_element((By.ID, "member-list"), "bob"))

        type_into(browser, "say", "hello from a browser")
        assert bob.read_line() == "<alice> hello from a browser"
        bob.send_line("hello from telnet")
        wait_for_line(browser, "hello from telnet")
        bob.send_line("/msg alice a secret")
        assert bob.read_line() == "-> *alice* a secret"
        assert "*bob*" in wait_for_line(browser, "a secret").text
        bob.send_line(XSS)
        line = wait_for_line(browser, XSS)
        assert line.text.endswith(f"<bob> {XSS}")  # shown as text: no image element, no alert
        assert browser.find_elements(By.CSS_SELECTOR, "#messages img") == []
        bob.send_line("/msg #lobby news in the lobby")
        WebDriverWait(browser, 10).until(
            shown.text_to_be_present_in_element((By.CSS_SELECTOR, "#channel-list .unread"), "1"))
        bob.send_line("/msg #lobby alice: look here")  # a mention, in a channel she is not reading
        WebDriverWait(browser, 10).until(
            shown.text_to_be_present_in_element((By.CSS_SELECTOR, "#channel-list .unread.mention"), "@2"))
        browser.save_screenshot(str(tmp_path / "desktop.png"))

        browser.set_window_size(*PHONE)
        WebDriverWait(browser, 10).until(shown.visibility_of_element_located((By.ID, "show-members")))
        browser.save_screenshot(str(tmp_path / "phone.png"))
        browser.find_element(By.ID, "show-members").click()
        WebDriverWait(browser, 10).until(shown.visibility_of_element_located((By.ID, "member-list")))
        browser.save_screenshot(str(tmp_path / "phone-members.png"))
    finally:
        browser.quit()
        bob.close()
    print("screenshots:", *(tmp_path / name for name in ("desktop.png", "phone.png", "phone-members.png")))


def test_the_page_says_when_the_server_goes_and_comes_back_by_itself(tmp_path):
    """A restart: the page says the server is shutting down, counts down, reconnects and logs in again."""
    chat_port = free_port_run(2)
    web_port = chat_port + 1
    args = ("--port", str(chat_port), "--interface", "127.0.0.1", "--web-port", str(web_port), "--fallback", "0",
            "--web-fallback", "0", "--name", "lab", "--no-echo")
    first = ChatdProcess(*args, cwd=tmp_path)
    browser = None
    try:
        first.wait_for_log("web page listening on")
        browser = chromium(tmp_path, DESKTOP)
        browser.get(f"http://127.0.0.1:{web_port}/")
        WebDriverWait(browser, 10).until(shown.visibility_of_element_located((By.ID, "nick")))
        type_into(browser, "nick", "alice")
        WebDriverWait(browser, 10).until(shown.text_to_be_present_in_element((By.ID, "status"), "Connected as alice"))
        type_into(browser, "say", "/join #lab")
        WebDriverWait(browser, 10).until(shown.text_to_be_present_in_element((By.ID, "channel-name"), "#lab"))
        assert first.stop() == 0
        wait_for_line(browser, "The server is shutting down.")
        WebDriverWait(browser, 10).until(shown.text_to_be_present_in_element((By.ID, "status"), "Reconnecting in"))
        second = ChatdProcess(*args, cwd=tmp_path)
        try:
            second.wait_for_log("web page listening on")
            WebDriverWait(browser, 40).until(
                shown.text_to_be_present_in_element((By.ID, "status"), "Connected as alice"))
            second.wait_for_log("alice joined #lab")  # and back in the channel she was in
            bob = LineClient(chat_port).login("bob")
            bob.send_line("/join #lab")
            assert bob.read_line() == "*** You joined #lab (2 users)"
            type_into(browser, "say", "back again")
            assert bob.read_line() == "<alice> back again"
            bob.close()
        finally:
            second.stop()
    finally:
        if first.process.poll() is None:
            first.stop()
        if browser is not None:
            browser.quit()


def spki_hash(certificate_file):
    """What Chromium's --ignore-certificate-errors-spki-list takes: the base64 SHA-256 of the certificate's public key."""
    certificate = x509.load_pem_x509_certificate(certificate_file.read_bytes())
    public_key = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(public_key).digest()).decode()


def test_a_browser_over_https_on_the_chat_port_and_on_its_own_port_chats_with_a_telnet_user(tmp_path):
    """
    Headless Chromium, trusting chatd's own self-signed certificate by its
    public key's hash (as a user who checked the fingerprint accepts it),
    opens https:// on the chat port (told from telnet by ALPN) and on the web
    page's TLS port, logs in over wss:// and chats with a plain telnet user.
    The page over plain HTTP links there, showing the fingerprint chatd logged.
    """
    state = tmp_path / "state"
    process = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--name", "lab", "--no-echo",
                           "--state-dir", str(state), cwd=tmp_path)
    browser = None
    try:
        fingerprint = process.wait_for_log("TLS certificate").rsplit(" ", 1)[1]
        port = int(re.search(r":(\d+)$", process.wait_for_log("chat room listening on").strip()).group(1))
        web_port = int(re.search(r":(\d+)$", process.wait_for_log("web page listening on").strip()).group(1))
        tls_port = int(re.search(r":(\d+)$", process.wait_for_log("web page over TLS listening on").strip()).group(1))
        bob = LineClient(port).login("bob")
        browser = chromium(tmp_path, DESKTOP, f"--ignore-certificate-errors-spki-list={spki_hash(state / 'certificate.pem')}")
        # Over plain HTTP, the login form links to the page over TLS, with the fingerprint to check there.
        browser.get(f"http://127.0.0.1:{web_port}/")
        WebDriverWait(browser, 10).until(shown.visibility_of_element_located((By.ID, "login-tls")))
        assert browser.find_element(By.ID, "tls-link").get_attribute("href") == f"https://127.0.0.1:{tls_port}/"
        assert browser.find_element(By.ID, "tls-fingerprint").text == fingerprint
        for number, url in enumerate((f"https://127.0.0.1:{port}/", f"https://127.0.0.1:{tls_port}/")):
            nick = f"alice{number}"
            browser.get(url)
            WebDriverWait(browser, 10).until(shown.visibility_of_element_located((By.ID, "nick")))
            assert not browser.find_element(By.ID, "login-tls").is_displayed()  # over TLS already
            type_into(browser, "nick", nick)
            WebDriverWait(browser, 10).until(shown.visibility_of_element_located((By.ID, "say")))
            assert bob.read_line() == f"*** {nick} has joined ({2 + number} users online)"
            type_into(browser, "say", f"hello over https from {url}")
            assert bob.read_line() == f"<{nick}> hello over https from {url}"
            bob.send_line(f"hello {nick}")
            wait_for_line(browser, f"hello {nick}")
            assert browser.execute_script("return location.protocol") == "https:"
        bob.close()
    finally:
        if browser is not None:
            browser.quit()
        process.stop()
