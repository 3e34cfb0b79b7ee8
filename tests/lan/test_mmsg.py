"""Many datagrams per system call (chatd.lan.mmsg), on real loopback sockets, against what socket.recvmsg says."""

import socket

import pytest

from chatd.lan import mmsg
from chatd.lan.udp import IP_PKTINFO, destination_of

pytestmark = pytest.mark.skipif(not mmsg.AVAILABLE, reason="recvmmsg/sendmmsg are Linux's")


def server_socket(family, host):
    server = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    else:
        server.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    server.bind((host, 0))
    server.setblocking(False)
    return server


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_sources_and_ancillary_data_read_as_socket_recvmsg_reads_them(family, host):
    """The same datagrams through recvmsg and through recvmmsg: the same source, the same pktinfo records."""
    reference, batched = server_socket(family, host), server_socket(family, host)
    with socket.socket(family, socket.SOCK_DGRAM) as client:
        client.bind((host, 0))
        client.sendto(b"one", reference.getsockname())
        client.sendto(b"one", batched.getsockname())
        data, ancillary, _, source = reference.recvmsg(2048, socket.CMSG_SPACE(64))
        datagrams = mmsg.Datagrams()
        assert datagrams.receive(batched.fileno()) == 1
        [((name, raw_ancillary), [index])] = datagrams.groups.items()
        assert datagrams.data(index) == data == b"one"
        assert mmsg.parse_sockaddr(name) == source[:2]
        assert mmsg.parse_ancillary(raw_ancillary) == ancillary
    reference.close()
    batched.close()


def test_echo_sends_each_datagram_back_to_its_own_source_in_order():
    """Two clients, 150 datagrams of different sizes interleaved: each client gets its own back, byte for byte, in order."""
    server = server_socket(socket.AF_INET, "127.0.0.1")
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    sent = {0: [], 1: []}
    try:
        for client in clients:
            client.bind(("127.0.0.1", 0))
            client.settimeout(5)
        for number in range(150):
            payload = bytes([number]) * (number + 1)
            clients[number % 2].sendto(payload, server.getsockname())
            sent[number % 2].append(payload)
        datagrams = mmsg.Datagrams()
        total = 0
        while total < 150:
            count = datagrams.receive(server.fileno())
            assert count, "every datagram was waiting"
            assert len(datagrams.groups) == 2  # one per client
            datagrams.echo(server.fileno(), sorted(index for indices in datagrams.groups.values() for index in indices))
            total += count
        for which, client in enumerate(clients):
            assert [client.recv(2048) for _ in sent[which]] == sent[which]
    finally:
        server.close()
        for client in clients:
            client.close()


def test_a_datagram_too_long_for_its_buffer_is_left_out():
    """Over MAX_DATAGRAM_BYTES: not half of it, nothing; the next one is read as usual."""
    server = server_socket(socket.AF_INET, "127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(b"x" * (mmsg.MAX_DATAGRAM_BYTES + 1), server.getsockname())
        client.sendto(b"short", server.getsockname())
        datagrams = mmsg.Datagrams()
        assert datagrams.receive(server.fileno()) == 2
        assert [datagrams.data(index) for indices in datagrams.groups.values() for index in indices] == [b"short"]
    server.close()


def test_a_socket_with_nothing_waiting_gives_an_empty_batch():
    """EAGAIN is an empty batch, not an error."""
    server = server_socket(socket.AF_INET, "127.0.0.1")
    assert mmsg.Datagrams().receive(server.fileno()) == 0
    server.close()


def test_a_dual_stack_socket_tells_an_ipv4_subnet_broadcast_from_a_unicast():
    """Bound to ::, an IPv4 datagram comes with IPV6_PKTINFO and IP_PKTINFO; the latter shows a broadcast for what it is."""
    server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    server.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    server.bind(("::", 0))
    server.setblocking(False)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        client.sendto(b"to all", ("127.255.255.255", server.getsockname()[1]))
        client.sendto(b"to us", ("127.0.0.1", server.getsockname()[1]))
        datagrams = mmsg.Datagrams()
        assert datagrams.receive(server.fileno()) == 2
        seen = [(datagrams.data(index), len(mmsg.parse_ancillary(ancillary)),
                 destination_of(mmsg.parse_ancillary(ancillary)).is_unicast_to_us)
                for (_, ancillary), indices in datagrams.groups.items() for index in indices]
    server.close()
    assert seen == [(b"to all", 2, False), (b"to us", 2, True)]
