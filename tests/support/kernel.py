"""Helpers of the kernel tests: fixture cards, configurations, scripted and tampering
cards, one-call taps. The kernel tests (kernel 2 and 3) and the driver matrix import
from here; the fixture card constants are in tests/support/cards.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from card.emv import EmvCard
from emvwire import tlv
from emvwire.profile import load_profile
from terminal.kernel.config import Combination, TerminalConfig, default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.registry import KernelRegistry
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers.base import Reader
from terminal.readers.emulated import EmulatedReader
from tests.support.cards import CARDS, VISA_AID

TRANSCRIPTS = CARDS.parent / "transcripts"
#: The date and time of the tests' transactions (the fixture cards expire 2030-12).
WHEN = datetime(2026, 3, 1, 12, 30, 0)


def card(name: str, **faults: Any) -> EmvCard:
    """A fixture card (``visa-card``, ``visa-phone``, ``mastercard-card``, ...), counters
    in memory, with ``faults`` (``pull_after=2``...)."""
    profile = load_profile(CARDS / f"{name}.json")
    if faults:
        profile = profile.with_faults(**faults)
    return EmvCard(profile)


def config(
    *,
    base: TerminalConfig | None = None,
    terminal: dict[int, bytes] | None = None,
    combinations: Iterable[Combination] | None = None,
    **visa: Any,
) -> TerminalConfig:
    """The default configuration with the Visa combination's fields replaced by ``visa``
    (``floor_limit=5000``, ``ttq=...``), terminal data objects added or replaced."""
    cfg = base or default_config()
    combos = list(combinations if combinations is not None else cfg.combinations)
    if visa:
        combos = [replace(c, **visa) if c.aid == VISA_AID else c for c in combos]
    data = {**cfg.terminal_data, **(terminal or {})}
    return replace(cfg, terminal_data=data, combinations=tuple(combos))


def kernel_config(kernel_id: bytes, **changes: Any) -> TerminalConfig:
    """The default configuration with every combination of ``kernel_id`` changed
    (``floor_limit=3000``...)."""
    cfg = default_config()
    combos = tuple(
        replace(c, **changes) if c.kernel_id == kernel_id else c for c in cfg.combinations
    )
    return replace(cfg, combinations=combos)


def counter_rng(start: int = 1) -> Callable[[int], bytes]:
    """A deterministic random source for tests that must not depend on chance."""
    state = [start]

    def rng(n: int) -> bytes:
        state[0] += 1
        return (state[0].to_bytes(4, "big") * (n // 4 + 1))[:n]

    return rng


class LoggingCard:
    """Wraps a card: keeps every command and answer."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.log: list[tuple[bytes, bytes]] = []

    @property
    def atr(self) -> bytes:
        return bytes(self.inner.atr)

    def power_on(self) -> None:
        self.inner.power_on()

    def power_off(self) -> None:
        self.inner.power_off()

    def process(self, c_apdu: bytes) -> bytes:
        answer = bytes(self.inner.process(c_apdu))
        self.log.append((bytes(c_apdu), answer))
        return answer

    @property
    def commands(self) -> list[bytes]:
        return [c for c, _ in self.log]


class MitmCard(LoggingCard):
    """A man in the middle: ``rewrite(command, answer) -> answer`` changes what the
    terminal receives (the card computed its answer from the real command)."""

    def __init__(self, inner: Any, rewrite: Callable[[bytes, bytes], bytes]) -> None:
        super().__init__(inner)
        self.rewrite = rewrite

    def process(self, c_apdu: bytes) -> bytes:
        answer = super().process(c_apdu)
        return self.rewrite(bytes(c_apdu), answer)


def rewrite_gpo(change: Callable[[dict[int, bytes]], object]) -> Callable[[bytes, bytes], bytes]:
    """A MITM rewrite that re-encodes the GPO answer (template 77) after ``change``
    edits its data objects (in order; deleting a key drops the object)."""

    def rewrite(command: bytes, answer: bytes) -> bytes:
        if command[:2] != b"\x80\xa8" or answer[-2:] != b"\x90\x00":
            return answer
        objects = tlv.decode_one(answer[:-2], 0x77).children
        values = {o.tag: o.value for o in objects}
        change(values)
        body = b"".join(tlv.encode(t, v) for t, v in values.items())
        return tlv.encode(0x77, body) + b"\x90\x00"

    return rewrite


@dataclass
class ScriptedCard:
    """A card that answers each recorded command with the recorded answer.

    A command not byte-for-byte the recorded one (where the transcript fixes it) is
    kept in ``mismatches`` and answered ``6D00``; the test asserts there are none.
    """

    exchanges: list[tuple[bytes, bytes]]
    atr: bytes = bytes.fromhex("3B8080018080")
    position: int = 0
    mismatches: list[str] = field(default_factory=list)

    @classmethod
    def from_transcript(cls, name: str) -> tuple[ScriptedCard, dict[str, Any]]:
        doc = json.loads((TRANSCRIPTS / name).read_text())
        pairs = [(bytes.fromhex(a["cmd"]), bytes.fromhex(a["resp"])) for a in doc["apdus"]]
        return cls(pairs), doc

    def power_on(self) -> None:
        pass

    def power_off(self) -> None:
        pass

    def process(self, c_apdu: bytes) -> bytes:
        if self.position >= len(self.exchanges):
            self.mismatches.append(f"extra command {c_apdu.hex().upper()}")
            return b"\x6d\x00"
        expected, answer = self.exchanges[self.position]
        self.position += 1
        if bytes(c_apdu) != expected:
            self.mismatches.append(
                f"command {self.position}: sent {c_apdu.hex().upper()}, "
                f"recorded {expected.hex().upper()}"
            )
            return b"\x6d\x00"
        return answer

    @property
    def done(self) -> bool:
        return self.position == len(self.exchanges)


class ReplayCard(ScriptedCard):
    """Answers by position whatever the command: a card (or a pre-play attacker) that
    ignores what the terminal sends."""

    def process(self, c_apdu: bytes) -> bytes:
        self.position += 1
        if self.position > len(self.exchanges):
            return b"\x6d\x00"
        return self.exchanges[self.position - 1][1]


def tap(
    the_card: Any,
    amount: int = 1234,
    *,
    cfg: TerminalConfig | None = None,
    registry: KernelRegistry | None = None,
    rng: Callable[[int], bytes] | None = None,
    when: datetime = WHEN,
    txn: Transaction | None = None,
    trace: list[str] | None = None,
) -> TransactionResult:
    """One transaction with ``the_card`` in an emulated reader's field."""
    options: dict[str, Any] = {"clock": lambda: when}
    if rng is not None:
        options["rng"] = rng
    if trace is not None:
        options["trace"] = trace.append
    entry = EntryPoint(cfg or default_config(), registry, **options)
    reader = EmulatedReader(the_card)
    return entry.run(reader, txn or Transaction(amount))


def tap_reader(
    reader: Reader,
    amount: int = 1234,
    *,
    cfg: TerminalConfig | None = None,
    when: datetime = WHEN,
    timeout: float | None = None,
) -> TransactionResult:
    """One transaction on any reader (waits for the card up to ``timeout``)."""
    entry = EntryPoint(cfg or default_config(), clock=lambda: when)
    return entry.run(reader, Transaction(amount), timeout=timeout)


def replay_transcript(the_card: Any, doc: dict[str, Any], un: bytes) -> TransactionResult:
    """One transaction with ``the_card`` (a :class:`ScriptedCard` or
    :class:`ReplayCard` of a tapstack transcript) for the transcript's amount, on its
    date and time, the built-in configuration drawing ``un`` as the unpredictable
    number."""
    when = datetime.strptime(doc["date"] + doc["time"], "%y%m%d%H%M%S")
    amount = int(tlv.decode_flat(bytes.fromhex(doc["transaction-req"]))[0x9F02].hex())
    return tap(the_card, amount, rng=lambda n: un[:n], when=when)
