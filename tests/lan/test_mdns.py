"""
MdnsService (chatd.lan.mdns) with the real reactor and python-zeroconf on
127.0.0.1, its updates timed by a fake clock.
"""

import threading

import pytest_twisted
from twisted.internet import reactor, threads
from twisted.internet.task import Clock
from zeroconf import IPVersion, Zeroconf

from chatd.lan.dnssd import CHATD_TYPE
from chatd.lan.mdns import UPDATE_EVERY_SECONDS, MdnsService, publish_addresses
from chatd.lan.udp import Herald


def zeroconf_threads():
    """The threads python-zeroconf runs its loops in (its own name for them)."""
    return [thread for thread in threading.enumerate() if "_run_loop" in thread.name]


def users_published(name):
    """The users online a fresh browser (no cache) reads in `name`'s _chatd._tcp TXT record now."""
    zeroconf = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        info = zeroconf.get_service_info(CHATD_TYPE, f"{name}.{CHATD_TYPE}", 3000)
        return None if info is None else info.decoded_properties["users"]
    finally:
        zeroconf.close()


@pytest_twisted.inlineCallbacks
def test_the_users_online_are_published_again_when_they_change_at_most_every_30_seconds():
    """
    Users come: nothing is sent before 30 s have passed since the last
    publication; at 30 s the new count is published and a browser reads it.
    """
    users, clock = [0], Clock()
    herald = Herald(name="unit-test-updates", users=lambda: users[0], chat_port=lambda: 18088,
                    chat_interface="127.0.0.1", clock=reactor, interval=5)
    service = MdnsService(reactor, herald, ["127.0.0.1"], clock=clock)
    service.startService()
    try:
        yield service.ready
        name = service.name
        assert name == "chatd on unit-test-updates"
        assert (yield threads.deferToThread(users_published, name)) == "0"
        users[0] = 2
        clock.advance(UPDATE_EVERY_SECONDS - 1)
        assert service.listing.users == 0
        clock.advance(1)
        assert service.listing.users == 2
        assert (yield threads.deferToThread(users_published, name)) == "2"
        assert len(zeroconf_threads()) == 1
    finally:
        yield service.stopService()
    assert zeroconf_threads() == []


@pytest_twisted.inlineCallbacks
def test_stopping_before_publishing_finishes_waits_for_it_and_closes_everything():
    """Stopped while still probing: the stop waits for the start, then no Zeroconf thread is left."""
    herald = Herald(name="unit-test-stop", users=lambda: 0, chat_port=lambda: 18088, chat_interface="127.0.0.1",
                    clock=reactor, interval=5)
    service = MdnsService(reactor, herald, ["127.0.0.1"])
    service.startService()
    yield service.stopService()
    assert service.ready.called
    assert zeroconf_threads() == []


def test_publishing_addresses_follow_the_interface_chatd_listens_on():
    """--mdns-interface wins; a concrete IPv4 --interface is used; 0.0.0.0 means every interface but loopback."""
    assert publish_addresses("0.0.0.0", ["127.0.0.1"]) == ["127.0.0.1"]
    assert publish_addresses("192.0.2.5", []) == ["192.0.2.5"]
    assert publish_addresses("2001:db8::5", []) == []
    assert "127.0.0.1" not in publish_addresses("0.0.0.0", [])
    assert publish_addresses("0.0.0.0", []) == publish_addresses("::", [])
