"""
Many datagrams per system call, on Linux: recvmmsg(2) and sendmmsg(2),
which Python's socket module lacks, called through ctypes.

The echo service uses them: with one recvmsg and one sendto per datagram,
the system calls were most of its cost.  Where they are missing (not
Linux, or a libc without them), `AVAILABLE` is False and the echo reads one
datagram at a time as before.

The buffers are allocated once and reused.  Fields of the kernel's
structures are read and written with `struct` on a memoryview of them,
which is several times cheaper than going through ctypes attributes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from typing import Any

MAX_DATAGRAMS = 64
MAX_DATAGRAM_BYTES = 8192  # as Twisted's UDP port reads; longer ones are cut (MSG_TRUNC) and left out
NAME_BYTES = 128  # a sockaddr_storage
CONTROL_BYTES = 128  # room for IPV6_PKTINFO and IP_PKTINFO both (a dual-stack socket gets both: 72 bytes)
MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p), ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("length", ctypes.c_uint)]


def _libc_functions() -> tuple[Any, Any] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        receive, send = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    receive.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    receive.restype = send.restype = ctypes.c_int
    return receive, send


_FUNCTIONS = _libc_functions()
# One mmsghdr as 64 bytes on 64-bit Linux: name pointer, namelen, iov
# pointer, iovlen, control pointer, controllen, flags, msg_len.
_ENTRY = struct.Struct("=Q I 4x Q Q Q Q i 4x I 4x")
_RECEIVED = struct.Struct("=8x I 28x Q i 4x I 4x")  # what recvmmsg fills in: namelen, controllen, flags, msg_len
_IOVEC = struct.Struct("=Q Q")
AVAILABLE = (_FUNCTIONS is not None and ctypes.sizeof(ctypes.c_void_p) == 8
             and ctypes.sizeof(_MMsgHdr) == _ENTRY.size and ctypes.sizeof(_IOVec) == _IOVEC.size)


class Datagrams:
    """Buffers for up to MAX_DATAGRAMS datagrams: received in one call, some sent back in one call."""

    def __init__(self) -> None:
        count = MAX_DATAGRAMS
        self._data = ctypes.create_string_buffer(count * MAX_DATAGRAM_BYTES)
        self._names = ctypes.create_string_buffer(count * NAME_BYTES)
        self._controls = ctypes.create_string_buffer(count * CONTROL_BYTES)
        self._received = (_MMsgHdr * count)()
        self._receive_iovecs = (_IOVec * count)()
        self._replies = (_MMsgHdr * count)()
        self._reply_iovecs = (_IOVec * count)()
        data, names, controls = (ctypes.addressof(buffer) for buffer in (self._data, self._names, self._controls))
        self._data_at = [data + index * MAX_DATAGRAM_BYTES for index in range(count)]
        self._name_at = [names + index * NAME_BYTES for index in range(count)]
        receive_iovecs, reply_iovecs = ctypes.addressof(self._receive_iovecs), ctypes.addressof(self._reply_iovecs)
        self._reply_iovec_at = [reply_iovecs + index * _IOVEC.size for index in range(count)]
        received = memoryview(self._received).cast("B")
        for index in range(count):
            _IOVEC.pack_into(memoryview(self._receive_iovecs).cast("B"), index * _IOVEC.size,
                             self._data_at[index], MAX_DATAGRAM_BYTES)
            _ENTRY.pack_into(received, index * _ENTRY.size, self._name_at[index], NAME_BYTES,
                             receive_iovecs + index * _IOVEC.size, 1,
                             controls + index * CONTROL_BYTES, CONTROL_BYTES, 0, 0)
        self._received_view = received
        self._fresh = bytes(received)  # namelen and controllen reset before each receive
        self._replies_view = memoryview(self._replies).cast("B")
        self._reply_iovecs_view = memoryview(self._reply_iovecs).cast("B")
        self._data_view = memoryview(self._data).cast("B")
        self._names_view = memoryview(self._names).cast("B")
        self._controls_view = memoryview(self._controls).cast("B")
        self._lengths: list[int] = []
        self._namelens: list[int] = []
        self.groups: dict[tuple[bytes, bytes], list[int]] = {}
        # What each reply slot was last set to, (index, length, namelen): usually unchanged.
        self._slots: list[tuple[int, int, int] | None] = [None] * count

    def receive(self, fd: int) -> int:
        """
        Read the datagrams waiting on `fd`; how many (0 if it would block).
        `groups` then holds their indices here by source (a raw sockaddr)
        and ancillary data (raw cmsgs), in arrival order; their bytes stay
        here for `data` and `echo`.  Truncated datagrams are left out.
        """
        assert _FUNCTIONS is not None
        self._received_view[:] = self._fresh
        count: int = _FUNCTIONS[0](fd, ctypes.addressof(self._received), MAX_DATAGRAMS, MSG_DONTWAIT, None)
        if count < 0:
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return 0
            raise OSError(code, os.strerror(code))
        # Two copies per batch, then cheap bytes slices per datagram.
        names = self._names_view[: count * NAME_BYTES].tobytes()
        controls = self._controls_view[: count * CONTROL_BYTES].tobytes()
        self._lengths, self._namelens = lengths, namelens = [], []
        groups: dict[tuple[bytes, bytes], list[int]] = {}
        self.groups = groups
        entries = _RECEIVED.iter_unpack(self._received_view[: count * _ENTRY.size])
        for index, (namelen, controllen, flags, length) in enumerate(entries):
            lengths.append(length)
            namelens.append(namelen)
            if flags & MSG_TRUNC:
                continue
            start, control_start = index * NAME_BYTES, index * CONTROL_BYTES
            key = (names[start : start + namelen], controls[control_start : control_start + controllen])
            group = groups.get(key)
            if group is None:
                groups[key] = [index]
            else:
                group.append(index)
        return count

    def data(self, index: int) -> bytes:
        """The bytes of received datagram `index`."""
        start = index * MAX_DATAGRAM_BYTES
        return bytes(self._data_view[start : start + self._lengths[index]])

    def echo(self, fd: int, indices: list[int]) -> None:
        """Send each received datagram in `indices` back to its source, in one call; UDP may drop some."""
        assert _FUNCTIONS is not None
        replies, iovecs, slots = self._replies_view, self._reply_iovecs_view, self._slots
        for slot, index in enumerate(indices):
            wanted = (index, self._lengths[index], self._namelens[index])
            if slots[slot] != wanted:
                slots[slot] = wanted
                _IOVEC.pack_into(iovecs, slot * _IOVEC.size, self._data_at[index], wanted[1])
                _ENTRY.pack_into(replies, slot * _ENTRY.size, self._name_at[index], wanted[2],
                                 self._reply_iovec_at[slot], 1, 0, 0, 0, 0)
        sent = 0
        while sent < len(indices):
            done = _FUNCTIONS[1](fd, ctypes.addressof(self._replies) + sent * _ENTRY.size, len(indices) - sent, 0)
            if done < 0:
                code = ctypes.get_errno()
                if code == errno.EINTR:
                    continue
                raise OSError(code, os.strerror(code))
            sent += done


def parse_sockaddr(raw: bytes) -> tuple[str, int] | None:
    """(host, port) from a raw sockaddr_in or sockaddr_in6, as Python's socket module gives them."""
    import socket

    if len(raw) >= 8 and int.from_bytes(raw[:2], sys.byteorder) == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), int.from_bytes(raw[2:4], "big")
    if len(raw) >= 24 and int.from_bytes(raw[:2], sys.byteorder) == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), int.from_bytes(raw[2:4], "big")
    return None


_CMSG_HEADER = struct.Struct("=Q i i")


def parse_ancillary(raw: bytes) -> list[tuple[int, int, bytes]]:
    """(level, type, data) for each cmsg in raw ancillary data, as socket.recvmsg gives them."""
    items, offset = [], 0
    while offset + _CMSG_HEADER.size <= len(raw):
        length, level, kind = _CMSG_HEADER.unpack_from(raw, offset)
        if length < _CMSG_HEADER.size or offset + length > len(raw):
            break
        items.append((level, kind, raw[offset + _CMSG_HEADER.size : offset + length]))
        offset += (length + 7) & ~7
    return items
