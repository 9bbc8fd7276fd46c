"""Helpers of the back office tests: taps as a gate uploads them (contract TAP), made
either from plain values (unit tests) or from a kernel run against a software card
(tests with a real issuer), and a fake issuer for the engine's unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from emvwire.cardref import DEMO_CARD_REFERENCE_KEY, card_reference
from emvwire.seal import seal
from emvwire.tlv import encode
from emvwire.track2 import track2_pan
from hostlink.client import HostError, HostOutcome, HostUnreachableError
from terminal.kernel.config import TerminalConfig, default_config
from terminal.kernel.transaction import TransactionResult

VISA_PAN = "4761739001010010"
OTHER_PAN = "4761739001010028"


def iso(when: datetime) -> str:
    """A tap time as gates write it."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def plain_tap(
    public_key: bytes,
    gate: str,
    seq: int,
    when: datetime,
    *,
    direction: str = "single",
    zone: str | None = None,
    pan: str = VISA_PAN,
    psn: bytes = b"\x01",
    decision: str = "open",
    amount: int = 100,
) -> dict[str, Any]:
    """A tap whose chip data is only what the engine reads itself (PSN, amount): for
    engines facing a fake issuer."""
    tap_id = f"{gate}:{seq}"
    text = f"{pan}D28122010000000000"
    track2 = bytes.fromhex(text + "F" * (len(text) % 2))
    icc = encode(0x5F34, psn) + encode(0x9F02, bytes.fromhex(f"{amount:012d}"))
    return {
        "tap_id": tap_id, "gate_id": gate, "time": iso(when), "mode": "transit",
        "direction": direction, "zone": zone,
        "card_reference": card_reference(DEMO_CARD_REFERENCE_KEY, pan, psn),
        "masked_pan": pan[:6] + "*" * (len(pan) - 10) + pan[-4:], "token": False,
        "scheme": "visa", "aid": "A0000000031010", "outcome": "online_request",
        "oda": "not_performed", "decision": decision,
        "deny_reason": None if decision == "open" else "deny_list",
        "amount": amount, "currency": "978", "icc_data": icc.hex().upper(),
        "track2_sealed": seal(public_key, track2, tap_id.encode()).hex(),
    }  # fmt: skip


def transit_config() -> TerminalConfig:
    """The default terminal configuration as a transit gate (MCC 4111) runs it."""
    config = default_config()
    return replace(config, terminal_data={**config.terminal_data, 0x9F15: b"\x41\x11"})


def kernel_tap(
    public_key: bytes,
    gate: str,
    seq: int,
    when: datetime,
    result: TransactionResult,
    *,
    direction: str = "single",
    zone: str | None = None,
) -> dict[str, Any]:
    """The tap a gate uploads after the kernel ran against a card (contract TAP)."""
    tap_id = f"{gate}:{seq}"
    amount = int(result.data.get(0x9F02, bytes(6)).hex())
    return {
        "tap_id": tap_id, "gate_id": gate, "time": iso(when), "mode": "transit",
        "direction": direction, "zone": zone, "card_reference": result.card_reference,
        "masked_pan": result.masked_pan, "token": result.token,
        "scheme": "visa" if result.aid.hex().upper().startswith("A000000003") else "mastercard",
        "aid": result.aid.hex().upper(), "outcome": "online_request",
        "oda": result.oda.value.replace(" ", "_") if result.oda.value else "not_performed",
        "decision": "open", "deny_reason": None, "amount": amount, "currency": "978",
        "icc_data": result.authorisation_data.hex().upper(),
        "track2_sealed": seal(public_key, result.track2, tap_id.encode()).hex(),
    }  # fmt: skip


@dataclass
class FakeIssuer:
    """An issuer in memory with the real one's idempotency: a request id answers once
    and replays. ``declined`` PANs are declined for funds until ``recover_after``
    resubmissions; ``par`` gives PANs their payment account reference; ``lose_next``
    makes the next completion take effect and then lose its answer (a crash or a cut
    connection after the issuer committed)."""

    declined: set[str] = field(default_factory=set)
    par: dict[str, str] = field(default_factory=dict)
    recover_after: int = 1
    unreachable: bool = False
    lose_next: bool = False
    answers: dict[str, Any] = field(default_factory=dict)
    captures: list[tuple[str, int, str]] = field(default_factory=list)
    reversals: list[str] = field(default_factory=list)
    pans: dict[str, str] = field(default_factory=dict)
    resubmissions: int = 0

    def authorise(
        self, icc_data: bytes, track2: bytes, *, request_id: str | None = None
    ) -> HostOutcome:
        assert request_id
        if self.unreachable:
            raise HostUnreachableError
        if request_id in self.answers:
            stored: HostOutcome = self.answers[request_id]
            return stored
        pan = track2_pan(track2)
        txn = f"txn_{len(self.answers) + 1}"
        self.pans[txn] = pan
        ok = pan not in self.declined
        out = HostOutcome(
            ok, "00" if ok else "51", None if ok else "INSUFFICIENT_FUNDS", request_id,
            transaction_id=txn, par=self.par.get(pan),
        )  # fmt: skip
        self.answers[request_id] = out
        return out

    def complete(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        assert request_id
        assert amount is not None
        if self.unreachable:
            raise HostUnreachableError
        if request_id not in self.answers:
            if amount > 1500:
                raise HostError(409, "aggregation_limit_exceeded", "too much")
            self.captures.append((transaction_id, amount, request_id))
            self.answers[request_id] = {"id": transaction_id, "status": "closed"}
        if self.lose_next:
            self.lose_next = False
            raise HostUnreachableError
        stored: dict[str, Any] = self.answers[request_id]
        return stored

    def reverse(self, transaction_id: str, *, request_id: str | None = None) -> dict[str, Any]:
        assert request_id
        if request_id not in self.answers:
            self.reversals.append(transaction_id)
            self.answers[request_id] = {"id": transaction_id, "status": "reversed"}
        stored: dict[str, Any] = self.answers[request_id]
        return stored

    def resubmit(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> HostOutcome:
        assert request_id
        if request_id in self.answers:
            stored: HostOutcome = self.answers[request_id]
            return stored
        self.resubmissions += 1
        ok = self.resubmissions >= self.recover_after
        txn = f"txn_r{self.resubmissions}"
        out = HostOutcome(ok, "00" if ok else "51", None if ok else "INSUFFICIENT_FUNDS",
                          request_id, transaction_id=txn)  # fmt: skip
        self.answers[request_id] = out
        return out
