"""
End to end: the web front door of the real `twistd -n chatd`, with a
WebSocket client (tests/chatd_process.py's WebClient) and telnet-style
clients in the same channels.  Readiness comes from the server's log and
from the messages themselves, never a sleep.
"""

import re
import time
import urllib.error
import urllib.request

import pytest
from tests.chatd_process import ChatdProcess, LineClient, WebClient
from prometheus_client.parser import text_string_to_metric_families


def start(tmp_path, *args):
    port_file = tmp_path / "port"
    server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", "lab",
                          "--no-echo", *args, cwd=tmp_path)
    try:
        server.wait_for_log("chat room listening on")
        web_line = server.wait_for_log("web page listening on")
    except AssertionError:
        server.stop()  # not left running when it does not start as expected
        raise
    return server, int(port_file.read_text()), int(re.search(r":(\d+)", web_line.split(" on ")[-1]).group(1))


@pytest.fixture
def chat(tmp_path):
    server, port, web_port = start(tmp_path)
    clients = []

    class Chat:
        process = server
        web = web_port

        @staticmethod
        def telnet(nick):
            client = LineClient(port).login(nick)
            clients.append(client)
            return client

        @staticmethod
        def browser(nick=None, **options):
            client = WebClient(web_port, **options)
            clients.append(client)
            return client.login(nick) if nick else client

    yield Chat
    for client in clients:
        client.close()
    server.stop()


def said(events):
    """(channel, nick, text) of each "said" event: ["said", TS, CHANNEL, NICK, TEXT]."""
    return [tuple(event[2:]) for event in events if event[0] == "said"]


def test_web_and_telnet_users_talk_both_ways_in_two_channels(chat):
    """A WebSocket user and a telnet user talk both ways, in the lobby and in a channel."""
    alice = chat.browser("alice")
    bob = chat.telnet("bob")
    [joined] = alice.events()
    assert joined[0] == "joined" and abs(joined[1] - time.time()) < 60 and joined[2:] == ["#lobby", "bob", 2, "", ""]
    alice.send_json({"type": "say", "text": "hello from the web"})
    assert bob.read_line() == "<alice> hello from the web"
    bob.send_line("hi from telnet, Алиса")
    assert said(alice.events()) == [("#lobby", "bob", "hi from telnet, Алиса")]

    alice.send_json({"type": "join", "channel": "lab"})
    joined = alice.receive_until("channel-joined")
    assert (joined["channel"], joined["count"], joined["topic"]) == ("#lab", 1, "")
    bob.send_line("/join #lab")
    assert bob.read_line() == "*** You joined #lab (2 users)"
    assert [(event[0], event[3]) for event in alice.events()] == [("joined", "bob")]
    alice.send_json({"type": "say", "text": "in the lab", "channel": "#lab"})
    assert bob.read_line() == "<alice> in the lab"
    alice.send_json({"type": "act", "text": "waves", "channel": "#lobby"})
    assert bob.read_line() == "[#lobby] * alice waves"
    bob.send_line("/msg #lobby back in the lobby")
    assert said(alice.events()) == [("#lobby", "bob", "back in the lobby")]
    bob.send_line("lab talk")
    assert said(alice.events()) == [("#lab", "bob", "lab talk")]


def test_private_messages_and_names_reach_across_front_doors(chat):
    """Private messages and names cross between the web and telnet, and markup stays text."""
    alice = chat.browser("alice")
    bob = chat.telnet("bob")
    bob.send_line("/msg alice psst")
    assert bob.read_line() == "-> *alice* psst"
    assert alice.receive_until("private") == {"type": "private", "sender": "bob", "text": "psst",
                                                  "notice": False}
    alice.send_json({"type": "msg", "to": "bob", "text": "<b>hi</b>"})
    assert alice.receive_until("private-sent") == {"type": "private-sent", "to": "bob", "text": "<b>hi</b>"}
    assert bob.read_line() == "*alice* <b>hi</b>"
    alice.send_json({"type": "names", "channel": "#lobby"})
    assert sorted(alice.receive_until("members")["nicks"]) == ["alice", "bob"]


def test_a_nickname_taken_on_one_front_door_is_taken_on_the_other(chat):
    """A nickname (or a look-alike) a telnet user holds is refused to a browser."""
    chat.telnet("alice")
    web = chat.browser()
    assert web.receive()["type"] == "welcome"
    web.send_json({"type": "login", "nick": "ALICE"})
    assert web.receive() == {"type": "error", "reason": "nickname is taken: ALICE", "code": "nickname-taken",
                             "subject": "ALICE"}
    web.send_json({"type": "login", "nick": "aIice"})  # a look-alike
    assert web.receive()["code"] == "nickname-taken"


def test_bad_json_gets_an_error_and_a_close_and_nobody_else_notices(chat):
    """A browser that sends what is not JSON is told and closed, and the others go on."""
    alice = chat.browser("alice")
    bob = chat.telnet("bob")
    mallory = chat.browser("mallory")
    bob.read_line()  # mallory joined
    mallory.send_text("{not json")
    assert mallory.receive() == {"type": "closing", "reason": "not JSON", "code": "bad-message"}
    assert mallory.wait_closed() == 1003
    assert bob.read_line() == "*** mallory has left (Quit)"
    alice.send_json({"type": "say", "text": "still here"})
    assert bob.read_line() == "<alice> still here"


def test_a_page_of_another_site_may_not_open_the_chat(chat):
    """A WebSocket from another site's page is refused with 403; the page's own origin is let in."""
    refused = WebClient(chat.web, origin="http://evil.example")
    assert refused.rejected == 403
    same = WebClient(chat.web, origin=f"http://127.0.0.1:{chat.web}")
    assert same.rejected is None and same.receive()["type"] == "welcome"
    refused.close()
    same.close()


def test_the_page_health_and_metrics_are_served(chat):
    """The page (with its security policy), /healthz and /metrics are served by the real server."""
    assert chat.process.wait_for_log("in a browser to chat").endswith(
        f"open http://127.0.0.1:{chat.web}/ in a browser to chat")
    page = urllib.request.urlopen(f"http://127.0.0.1:{chat.web}/", timeout=10)
    assert page.status == 200 and b'<script src="/chat.js" defer>' in page.read()
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert urllib.request.urlopen(f"http://127.0.0.1:{chat.web}/healthz", timeout=10).read() == b"ok\n"
    alice = chat.browser("alice")
    chat.telnet("bob").send_line("one message")
    alice.events()
    text = urllib.request.urlopen(f"http://127.0.0.1:{chat.web}/metrics", timeout=10).read().decode()
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(text) for sample in family.samples}
    assert samples[("chatd_connections", (("door", "telnet"), ("tls", "no")))] == 1
    assert samples[("chatd_connections", (("door", "web"), ("tls", "no")))] == 1
    assert samples[("chatd_users", ())] == 2
    assert samples[("chatd_channels", ())] == 1
    assert samples[("chatd_messages_total", ())] == 1
    assert samples[("chatd_deliveries_total", ())] >= 2  # bob's join to alice, the message to alice
    assert samples[("chatd_fan_out_seconds_count", ())] >= 1
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{chat.web}/nothing", timeout=10)
    assert missing.value.code == 404


def test_the_chat_port_serves_a_browser_the_page_and_the_chat(tmp_path):
    """`http://HOST:8088/` works: a client that speaks HTTP before the greeting is the web page's."""
    server, port, _ = start(tmp_path)
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status == 200 and b'<script src="/chat.js" defer>' in page.read()
        alice = WebClient(port, origin=f"http://127.0.0.1:{port}").login("alice")  # the page's WebSocket, same port
        bob = LineClient(port).login("bob")
        assert alice.events()[0][0] == "joined"
        bob.send_line("hi, web")
        assert said(alice.events()) == [("#lobby", "bob", "hi, web")]
        typed_ahead = LineClient(port)
        typed_ahead.send(b"carol\r\nhello\r\n")
        assert typed_ahead.read_lines(3) == ["*** Welcome to chatd on lab. 2 users online.", "*** Choose a nickname:",
                                             "*** Hello carol! Type /help for commands."]
        # https:// on the same port, and TLS clients: tests/e2e/test_tls.py.
    finally:
        server.stop()


def test_a_browser_keeps_a_big_channels_member_list_from_its_summaries(tmp_path):
    """Above --quiet-joins, joins and leaves come as a summary that names who came and who went."""
    server, port, web_port = start(tmp_path, "--quiet-joins", "2")
    try:
        alice = WebClient(web_port).login("alice")
        bob = LineClient(port).login("bob")
        assert [event[0] for event in alice.events()] == ["joined"]  # bob: 2 members, still announced
        carol = LineClient(port).login("carol")  # 3 members: quiet from here
        dave = LineClient(port).login("dave")
        dave.send_line("/quit")
        [crowd] = alice.events()  # within the 5 s of a summary
        assert crowd[0] == "crowd" and crowd[2:] == ["#lobby", 2, 1, 3, ["carol"], ["dave"]]
        bob.close()
        carol.close()
    finally:
        server.stop()
