"""The issuer's ISO 8583 listener over a real socket, on SQLite and PostgreSQL, with
messages written out by the test (tests/support/iso8583.py, not the product's codec):
sign-on, authorisation through the same authoriser as HTTP, retransmissions, advice,
financial, refund and reversal by field 90, and malformed input answered with a
format error on a connection that stays usable."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.model.entities import Authorisation
from issuer.service.iso8583 import Iso8583Handler
from issuer.service.iso8583_server import Iso8583Server
from terminal.kernel.transaction import TransactionResult
from tests.issuer.helpers import World, balances, make_world, send, tap
from tests.support.iso8583 import Wire, build, framed, ll, lll
from tests.support.servers import serving

NOW = "1206134501"


@dataclass
class Served:
    world: World
    address: tuple[str, int]
    terminal_id: str
    credential: str
    handler: Iso8583Handler

    @property
    def code(self) -> str:
        return self.terminal_id[-8:]

    def wire(self) -> Wire:
        return Wire(self.address)


@pytest.fixture
def served(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> Iterator[Served]:
    w = make_world(issuer, rsa_keys)
    terminal_id, credential = w.auth.removeprefix("Bearer ").split(":", 1)
    handler = Iso8583Handler(w.app)
    sock = socket.create_server(("127.0.0.1", 0))
    server = Iso8583Server(handler, sock, body_timeout=0.3)
    with serving(server):
        yield Served(w, sock.getsockname()[:2], terminal_id, credential, handler)


def sign_on(s: Served, stan: str = "000001", credential: str | None = None) -> bytes:
    token = f"{s.terminal_id}:{credential or s.credential}"
    return build("0800", {7: NOW, 11: stan, 41: s.code, 48: lll(token), 70: "001"})


def echo(stan: str = "000900") -> bytes:
    return build("0800", {7: NOW, 11: stan, 70: "301"})


def track2_text(track2: bytes) -> str:
    return track2.hex().upper().rstrip("F").replace("D", "=")


def authorisation(
    s: Served, result: TransactionResult, stan: str, mti: str = "0100", **more: bytes | str
) -> bytes:
    amount = result.authorisation_data.hex().upper().split("9F0206", 1)[1][:12]
    fields: dict[int, bytes | str] = {
        3: "000000", 4: amount, 7: NOW, 11: stan, 18: "5411", 22: "071",
        35: ll(track2_text(result.track2)), 41: s.code, 49: "978",
        55: lll(result.authorisation_data),
    }  # fmt: skip
    fields.update({int(k[1:]): v for k, v in more.items()})
    return build(mti, fields)


def signed_on(s: Served) -> Wire:
    wire = s.wire()
    mti, answer = wire.ask(sign_on(s))
    assert (mti, answer[39]) == ("0810", b"00")
    return wire


def record(s: Served, txn: str) -> Authorisation:
    with s.world.app.ledger.unit_of_work(write=False) as uow:
        return uow.authorisations.get(txn)


def test_sign_on_binds_the_terminal(served: Served) -> None:
    with served.wire() as wire:
        result = tap(served.world.card, 100)
        # Before a sign-on: refused (63), and the connection stays.
        mti, answer = wire.ask(authorisation(served, result, "000010"))
        assert (mti, answer[39], answer[44]) == ("0110", b"63", b"not_signed_on")
        mti, answer = wire.ask(sign_on(served, credential="tsk_wrong"))
        assert (mti, answer[39]) == ("0810", b"63")
        assert 48 not in answer
        # An echo needs no sign-on.
        assert wire.ask(echo())[1][39] == b"00"
        mti, answer = wire.ask(sign_on(served))
        assert (mti, answer[39], answer[11], answer[41]) == ("0810", b"00", b"000001",
                                                             served.code.encode())  # fmt: skip
        # Another terminal's field 41 is not signed on in this session.
        other = authorisation(served, result, "000011", f41="zzzzzzzz")
        assert wire.ask(other)[1][39] == b"63"
        # Sign-off ends it.
        off = build("0800", {7: NOW, 11: "000012", 41: served.code, 70: "002"})
        assert wire.ask(off)[1][39] == b"00"
        assert wire.ask(authorisation(served, result, "000013"))[1][39] == b"63"
    assert balances(served.world) == (10_000, 0)


def test_an_authorisation_is_decided_held_and_recorded(served: Served) -> None:
    w = served.world
    result = tap(w.card, 2500)
    with signed_on(served) as wire:
        mti, answer = wire.ask(authorisation(served, result, "000042"))
    assert mti == "0110"
    assert answer[39] == b"00"
    assert len(answer[38]) == 6
    assert answer[55][:2] == bytes.fromhex("9108")  # issuer authentication data (CVN 10)
    assert (answer[4], answer[7], answer[11], answer[41]) == (
        b"000000002500", NOW.encode(), b"000042", served.code.encode(),
    )  # fmt: skip
    assert 2 not in answer
    assert 35 not in answer
    auth = record(served, answer[62].decode())
    assert auth.request_id == f"iso8583:{NOW}:000042"
    assert auth.mcc == "5411"
    assert balances(w) == (10_000, 2500)


def test_the_terminal_mcc_counts_not_the_message(served: Served) -> None:
    result = tap(served.world.card, 300)
    with signed_on(served) as wire:
        answer = wire.ask(authorisation(served, result, "000043", f18="4111"))[1]
    assert record(served, answer[62].decode()).mcc == "5411"


def test_a_retransmission_gets_the_stored_answer(served: Served) -> None:
    result = tap(served.world.card, 700)
    with signed_on(served) as wire:
        first = wire.ask(authorisation(served, result, "000050"))[1]
        # The repeat (0101) and the same 0100 again: same STAN, terminal and time.
        repeat = wire.ask(authorisation(served, result, "000050", mti="0101"))[1]
        again = wire.ask(authorisation(served, result, "000050"))[1]
        # The same STAN and time with another request: a duplicate transmission.
        other = tap(served.world.card, 800)
        clash = wire.ask(authorisation(served, other, "000050"))[1]
    assert first[62] == repeat[62] == again[62]
    assert first[39] == repeat[39] == again[39] == b"00"
    assert (clash[39], clash[44]) == (b"94", b"conflict")
    assert balances(served.world) == (10_000, 700)  # held once


def test_declines_carry_the_same_codes_as_http(served: Served) -> None:
    result = tap(served.world.card, 20_000)  # above the balance
    with signed_on(served) as wire:
        answer = wire.ask(authorisation(served, result, "000060"))[1]
    assert (answer[39], answer[44]) == (b"51", b"INSUFFICIENT_FUNDS")
    assert 38 not in answer
    http = send(served.world, tap(served.world.card, 20_000).authorisation_data,
                result.track2, "http-1")  # fmt: skip
    assert (http["response_code"], http["reason"]) == ("51", "INSUFFICIENT_FUNDS")


def test_the_ledger_cannot_tell_http_from_iso8583(served: Served) -> None:
    w = served.world
    by_http = send(w, tap(w.card, 400).authorisation_data, tap(w.card, 1).track2, "h-1")
    result = tap(w.card, 400)
    with signed_on(served) as wire:
        by_iso = wire.ask(authorisation(served, result, "000070"))[1]

    def shape(auth: Authorisation) -> dict[str, object]:
        data = dataclasses.asdict(auth)
        for key in ("id", "request_id", "request_hash", "created_at", "updated_at",
                    "expires_at", "atc", "response"):  # fmt: skip
            data.pop(key)
        data["response"] = sorted(json.loads(auth.response))
        return data

    assert shape(record(served, by_http["id"])) == shape(record(served, by_iso[62].decode()))


def test_reversal_by_original_data_elements(served: Served) -> None:
    result = tap(served.world.card, 900)
    with signed_on(served) as wire:
        auth = wire.ask(authorisation(served, result, "000080"))[1]
        assert balances(served.world) == (10_000, 900)
        original = b"0100" + b"000080" + NOW.encode() + b"0" * 22
        reversal = build("0400", {7: NOW, 11: "000081", 41: served.code, 90: original})
        mti, answer = wire.ask(reversal)
        assert (mti, answer[39], answer[62], answer[44]) == ("0410", b"00", auth[62], b"reversed")
        # Its repeat changes nothing; an original never seen: 25.
        assert wire.ask(b"0401" + reversal[4:])[1][39] == b"00"
        unknown = b"0100" + b"000099" + NOW.encode() + b"0" * 22
        lost = build("0400", {7: NOW, 11: "000082", 41: served.code, 90: unknown})
        assert wire.ask(lost)[1][39] == b"25"
    assert balances(served.world) == (10_000, 0)


def test_advice_completes_and_financial_captures_and_refunds(served: Served) -> None:
    w = served.world
    with signed_on(served) as wire:
        auth = wire.ask(authorisation(served, tap(w.card, 1000), "000100"))[1]
        # 0120: the final amount of the pre-authorisation, named by field 62.
        advice = build("0120", {4: "000000000750", 7: NOW, 11: "000101", 41: served.code,
                                62: lll(auth[62])})  # fmt: skip
        mti, answer = wire.ask(advice)
        assert (mti, answer[39], answer[4], answer[44]) == ("0130", b"00", b"000000000750",
                                                            b"closed")  # fmt: skip
        assert balances(w) == (9_250, 0)
        # 0200 purchase: authorised and captured at once.
        sale = wire.ask(authorisation(served, tap(w.card, 500), "000102", mti="0200"))[1]
        assert sale[39] == b"00"
        assert record(served, sale[62].decode()).captured_amount == 500
        assert balances(w) == (8_750, 0)
        # 0200 refund (processing code 20) of the sale, named by field 90.
        original = b"0200" + b"000102" + NOW.encode() + b"0" * 22
        refund = build("0200", {3: "200000", 4: "000000000200", 7: NOW, 11: "000103",
                                41: served.code, 90: original})  # fmt: skip
        mti, answer = wire.ask(refund)
        assert (mti, answer[39]) == ("0210", b"00")
        assert answer[62] != sale[62]
        assert balances(w) == (8_950, 0)
        # A refund above what is left is refused, the connection goes on.
        too_much = build("0200", {3: "200000", 4: "000000009999", 7: NOW, 11: "000104",
                                  41: served.code, 62: lll(sale[62])})  # fmt: skip
        assert wire.ask(too_much)[1][39] == b"30"
        assert wire.ask(echo())[1][39] == b"00"


def test_an_unsupported_message_type_is_refused(served: Served) -> None:
    with signed_on(served) as wire:
        mti, answer = wire.ask(build("0300", {7: NOW, 11: "000110", 41: served.code}))
        assert (mti, answer[39]) == ("0310", b"12")
        missing = build("0100", {7: NOW, 11: "000111", 41: served.code})  # no field 55
        assert wire.ask(missing)[1][39] == b"30"


def _usable(wire: Wire) -> None:
    mti, answer = wire.ask(echo("000999"))
    assert (mti, answer[39]) == ("0810", b"00")


def test_malformed_messages_get_a_format_error_and_the_connection_stays(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = tap(served.world.card, 100)
    good = authorisation(served, result, "000120")
    pan = track2_text(result.track2).split("=")[0]
    with signed_on(served) as wire:
        # A bitmap announcing field 55, which is absent.
        absent = build("0100", {7: NOW, 11: "000121", 41: served.code}, bits={7, 11, 41, 55})
        mti, answer = wire.ask(absent)
        assert (mti, answer[39], answer[11]) == ("0110", b"30", b"000121")
        _usable(wire)
        # Field 55 truncated: its length says more than the message holds.
        cut = good[:-20]  # field 55 ends the message
        mti, answer = wire.ask(cut)
        assert (mti, answer[39], answer[11]) == ("0110", b"30", b"000120")
        _usable(wire)
        # A length header that announces more than is sent: answered after a wait.
        wire.send(len(good).to_bytes(2, "big") + good[:40])
        mti, answer = wire.read()
        assert (mti, answer[39]) == ("0110", b"30")
        _usable(wire)
        # A length header shorter than the message: its rest is dropped.
        wire.send((len(good) - 30).to_bytes(2, "big") + good)
        assert wire.read()[1][39] == b"30"
        _usable(wire)
        # A length header above the maximum (the bytes sent are read and dropped).
        wire.send((5000).to_bytes(2, "big") + good + bytes(5000 - len(good)))
        assert wire.read()[1][39] == b"30"
        _usable(wire)
        # The message is good after all that: decided once.
        assert wire.ask(good)[1][39] == b"00"
    text = caplog.text
    assert pan not in text
    assert served.credential not in text
    assert result.authorisation_data.hex() not in text.lower()


def test_unreadable_input_closes_the_connection(served: Served) -> None:
    with signed_on(served) as wire:
        wire.send(framed(b"\xff\xfe" + bytes(20)))
        assert wire.closed()
    with served.wire() as wire:
        wire.send(b"\x00\x02ab")  # too short for an MTI
        assert wire.closed()


def test_a_revoked_terminal_is_refused_on_its_next_message(served: Served) -> None:
    with signed_on(served) as wire:
        served.world.app.service.revoke_terminal(served.terminal_id)
        answer = wire.ask(authorisation(served, tap(served.world.card, 100), "000130"))[1]
        assert answer[39] == b"63"


def test_connections_are_answered_together(served: Served) -> None:
    w = served.world
    taps = [tap(w.card, 10 + i) for i in range(8)]
    answers: dict[int, bytes] = {}

    def one(i: int) -> None:
        with signed_on(served) as wire:
            answers[i] = wire.ask(authorisation(served, taps[i], f"{200 + i:06d}"))[1][39]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {i: b"00" for i in range(8)}
    assert balances(w) == (10_000, sum(10 + i for i in range(8)))


def test_a_certified_connection_needs_no_credential(served: Served) -> None:
    from emvwire.iso8583 import decode
    from issuer.service.iso8583 import Session

    session = Session(peer="test", certified=served.terminal_id)
    message = decode(authorisation(served, tap(served.world.card, 100), "000140"))
    answer = served.handler.answer(session, message)
    assert answer is not None
    assert answer.text(39) == "00"
    stranger = Session(peer="test")
    refused = served.handler.answer(stranger, message)
    assert refused is not None
    assert refused.text(39) == "63"
