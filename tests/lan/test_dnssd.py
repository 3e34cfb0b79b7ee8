"""What chatd publishes by DNS-SD, and how chatd-listen reads it back (chatd.lan.dnssd)."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chatd.lan.announcement import NotAnAnnouncement
from chatd.lan.dnssd import (
    CHATD_TYPE,
    MAX_LABEL_BYTES,
    Listing,
    announcement_from_txt,
    chatd_txt,
    host_label,
    instance_name,
    offers,
)

FINGERPRINT = ":".join(["3A"] * 32)
FULL = Listing(id="9f1c2a4be07d3361", version="0.1.0", name="lab", chat=8088, users=3, channels=2, web=8080,
               irc=6667, https=8443, ircs=6697, cluster="chatd", fingerprint=FINGERPRINT)
BARE = Listing(id="9f1c2a4be07d3361", version="0.1.0", name="lab", chat=8088, users=0)


def test_every_door_is_offered_with_its_port_and_the_web_page_with_its_path():
    """A chatd with every door and TLS offers six types; the web pages say path=/; _chatd._tcp is last."""
    assert [(offer.type, offer.port) for offer in offers(FULL)] == [
        ("_http._tcp.local.", 8080), ("_https._tcp.local.", 8443), ("_irc._tcp.local.", 6667),
        ("_ircs._tcp.local.", 6697), ("_telnet._tcp.local.", 8088), (CHATD_TYPE, 8088)]
    assert offers(FULL)[0].txt == offers(FULL)[1].txt == {"path": "/"}


def test_a_door_that_is_off_is_not_offered():
    """--no-web, --no-irc and --no-tls: only the chat port, as _telnet._tcp and _chatd._tcp."""
    assert [offer.type for offer in offers(BARE)] == ["_telnet._tcp.local.", CHATD_TYPE]


def test_the_chatd_txt_record_names_every_port_the_cluster_and_the_fingerprint():
    """txtvers first, then what chatd-listen prints; absent doors are absent keys."""
    assert chatd_txt(FULL) == {
        "txtvers": "1", "id": "9f1c2a4be07d3361", "version": "0.1.0", "name": "lab", "chat": "8088", "web": "8080",
        "irc": "6667", "https": "8443", "ircs": "6697", "cluster": "chatd", "fingerprint": FINGERPRINT,
        "users": "3", "channels": "2"}
    assert list(chatd_txt(FULL))[0] == "txtvers"
    assert chatd_txt(BARE) == {"txtvers": "1", "id": "9f1c2a4be07d3361", "version": "0.1.0", "name": "lab",
                               "chat": "8088", "users": "0", "channels": "1"}


@given(st.text(min_size=1, max_size=64))
@example("\U0001F600" * 64)
def test_every_txt_string_fits_its_255_bytes(name):
    """Any --name (up to 64 characters of any script) keeps each key=value string of the TXT record within 255 bytes."""
    txt = chatd_txt(Listing(id="9f1c2a4be07d3361", version="0.1.0", name=name, chat=8088, users=0))
    assert all(len(f"{key}={value}".encode()) <= 255 for key, value in txt.items())
    assert name.startswith(txt["name"])


def test_a_name_taken_is_numbered_as_bonjour_does():
    """The first attempt is "chatd on NAME", the next "chatd on NAME (2)", and so on."""
    assert [instance_name("lab", attempt) for attempt in (1, 2, 10)] == [
        "chatd on lab", "chatd on lab (2)", "chatd on lab (10)"]


def test_a_dot_in_the_name_does_not_split_the_label():
    """The default name, the host name, may be pc12.school.lan: its dots become one-dot leaders, which look alike."""
    assert instance_name("pc12.school.lan") == "chatd on pc12\u2024school\u2024lan"


@given(st.text(min_size=1, max_size=64), st.integers(1, 99))
def test_an_instance_name_always_fits_one_dns_label(name, attempt):
    """However long the name (up to --name's 64 characters, of any script), the label is at most 63 bytes."""
    label = instance_name(name, attempt)
    assert len(label.encode()) <= MAX_LABEL_BYTES
    assert label.startswith("chatd on ")
    assert attempt == 1 or label.endswith(f" ({attempt})")
    assert "." not in label


def test_a_host_name_becomes_one_label_of_letters_digits_and_hyphens():
    """The first label of the host name, anything else turned into hyphens; never empty."""
    assert host_label("lab-pc.example.org") == "lab-pc"
    assert host_label("Salle_B 12") == "Salle-B-12"
    assert host_label("éé") == "chatd"


def test_a_txt_record_reads_back_as_the_announcement_it_makes():
    """chatd-listen reads its own TXT record back: the same ports, cluster and fingerprint; SRV's port is the chat's."""
    found = announcement_from_txt(chatd_txt(FULL), "192.0.2.5", 8088, 1795000000)
    assert (found.name, found.host, found.port, found.users, found.channels) == ("lab", "192.0.2.5", 8088, 3, 2)
    assert (found.web, found.irc, found.https, found.ircs) == (8080, 6667, 8443, 6697)
    assert (found.cluster, found.fingerprint, found.state) == ("chatd", FINGERPRINT, "up")
    bare = announcement_from_txt(chatd_txt(BARE), "192.0.2.5", 8088, 1795000000)
    assert (bare.web, bare.irc, bare.fingerprint, bare.cluster) == (None, None, None, None)


@pytest.mark.parametrize("change", [
    {"txtvers": None}, {"txtvers": "2"}, {"web": "99999"}, {"web": "http"}, {"users": "\u0663"}, {"users": "-1"},
    {"fingerprint": "not one"}, {"id": None},
])
def test_a_txt_record_that_is_not_chatds_is_refused(change):
    """Untrusted input from the LAN: a wrong version, port, number or fingerprint, or no id, is NotAnAnnouncement."""
    txt = {**chatd_txt(FULL), **change}
    with pytest.raises(NotAnAnnouncement):
        announcement_from_txt({key: value for key, value in txt.items() if value is not None}, "192.0.2.5", 8088, 0)
