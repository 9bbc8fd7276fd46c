"""The guard against the 44 ms delayed-ACK trap of vpcd, checked without timing anything.

vpcd writes a message's length and payload in two sends; a card socket that does not
re-arm ``TCP_QUICKACK`` around its reads delays its ACK and vpcd's second send waits
for it (bench/test_bench_card_pcsc.py measures both). Here a local stand-in for vpcd
writes the same way and the test counts the re-arming calls: on by default, around
every read; none with ``quickack=False`` (the benchmark's naive socket).
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

import card.vpcd
from card.vpcd import VpcdConnection, serve_once


class Card:
    atr = bytes.fromhex("3B8080010101")

    def power_on(self) -> None:
        pass

    def power_off(self) -> None:
        pass

    def process(self, c_apdu: bytes) -> bytes:
        return b"\x90\x00"


@pytest.fixture
def split_writer() -> Iterator[tuple[int, list[bytes]]]:
    """A vpcd stand-in: GET ATR, two C-APDUs, each as two sends (length, then payload)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    answers: list[bytes] = []

    def run() -> None:
        sock, _ = server.accept()
        with sock:
            for payload in (b"\x04", b"\x00\xca\x9f\x36\x00", b"\x00\xb2\x01\x0c\x00"):
                sock.sendall(struct.pack(">H", len(payload)))
                sock.sendall(payload)
                (length,) = struct.unpack(">H", sock.recv(2, socket.MSG_WAITALL))
                answers.append(sock.recv(length, socket.MSG_WAITALL))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield server.getsockname()[1], answers
    thread.join(timeout=10)
    server.close()


@pytest.mark.parametrize("quickack", [True, False])
def test_quickack_is_rearmed_around_every_read_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch, split_writer: tuple[int, list[bytes]], quickack: bool
) -> None:
    calls: list[socket.socket] = []
    real = card.vpcd._quickack

    def counting(sock: socket.socket) -> None:
        calls.append(sock)
        real(sock)

    monkeypatch.setattr(card.vpcd, "_quickack", counting)
    port, answers = split_writer
    assert serve_once(Card(), port=port, quickack=quickack) == 2
    assert answers == [Card.atr, b"\x90\x00", b"\x90\x00"]
    if quickack:
        # once at connect, then before and after each of the six reads (3 heads, 3 bodies)
        # and once more before the read that finds the socket closed
        assert len(calls) >= 1 + 2 * 6
    else:
        assert calls == []


def test_connection_default_is_quickack() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        conn = VpcdConnection(port=server.getsockname()[1])
        peer, _ = server.accept()
        with conn, peer:
            assert conn._quickack is True
            if hasattr(socket, "TCP_QUICKACK"):  # Linux: armed at connect
                raw = conn._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)
                assert raw == 1
