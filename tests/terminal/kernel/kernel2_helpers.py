"""Shared pieces of the kernel 2 tests: readers that script a card, configurations,
the public Mastercard transcripts and a phone profile with on-device CVM.

Not a test module (no ``test_`` prefix): the kernel 2 test modules import it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from card.emv import EmvCard
from emvwire.oda import (
    CaKeyStore,
    SigningKey,
    build_static_data,
    issue_icc_certificate,
    parse_terminal_config,
)
from emvwire.profile import CardProfile, load_profile
from emvwire.tlv import encode
from terminal.kernel.config import Combination, TerminalConfig, default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.k2.flow import KERNEL
from terminal.kernel.registry import KernelRegistry
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers.base import CardInfo, CardRemovedError, Reader, RecordingFeedback
from terminal.readers.emulated import EmulatedReader

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "fixtures"
CARDS = FIXTURES / "cards"
TRANSCRIPTS = FIXTURES / "transcripts"
MASTERCARD_AID = bytes.fromhex("A0000000041010")
#: The date the fixture cards are valid on (effective 2025-12-01, expiry 2030-12-31).
TODAY = datetime(2026, 3, 14, 15, 9, 26)


# --- readers -----------------------------------------------------------------------------


class ScriptedReader(Reader):
    """A reader whose card is a function ``c_apdu -> r_apdu`` (no ISO-DEP, no timing).

    ``sent`` records every C-APDU. ``answer`` may raise :class:`CardRemovedError` to
    play a card leaving the field.
    """

    def __init__(self, answer: Callable[[bytes], bytes], path: str = "scripted:") -> None:
        self.answer = answer
        self.path = path
        self.feedback = RecordingFeedback()
        self.sent: list[bytes] = []

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        return CardInfo()

    def transmit(self, c_apdu: bytes, timeout: float | None = None) -> bytes:
        self.sent.append(bytes(c_apdu))
        return self.answer(bytes(c_apdu))

    def card_present(self) -> bool:
        return True

    def repower(self) -> CardInfo:
        return CardInfo()

    def close(self) -> None:
        pass

    def ins_sent(self) -> list[int]:
        """The instruction byte of each C-APDU sent."""
        return [c[1] for c in self.sent]


class CardReader(ScriptedReader):
    """A :class:`ScriptedReader` around a software card, with an optional hook that
    may rewrite each answer (a man in the middle) or advance a fake timer."""

    def __init__(
        self,
        card: EmvCard,
        hook: Callable[[bytes, bytes], bytes] | None = None,
    ) -> None:
        self.card = card
        self.hook = hook
        card.power_on()
        super().__init__(self._answer, "scripted:card")

    def _answer(self, c_apdu: bytes) -> bytes:
        try:
            answer = self.card.process(c_apdu)
        except Exception as exc:
            if type(exc).__name__ == "CardRemoved":
                raise CardRemovedError("the card left the field") from exc
            raise
        return self.hook(c_apdu, answer) if self.hook else answer


@dataclass
class Transcript:
    """A recorded exchange (fixtures/transcripts): commands, answers, UN, date."""

    name: str
    apdus: list[tuple[bytes, bytes]]
    randoms: bytes
    when: datetime
    request: bytes

    @classmethod
    def load(cls, name: str, folder: Path = TRANSCRIPTS) -> Transcript:
        doc = json.loads((folder / f"{name}.json").read_text())
        return cls.from_json(name, doc)

    @classmethod
    def from_json(cls, name: str, doc: Mapping[str, Any]) -> Transcript:
        d, t = doc["date"], doc.get("time", "000000")
        when = datetime(
            2000 + int(d[:2]), int(d[2:4]), int(d[4:]), int(t[:2]), int(t[2:4]), int(t[4:])
        )
        return cls(
            name,
            [(bytes.fromhex(a["cmd"]), bytes.fromhex(a["resp"])) for a in doc["apdus"]],
            bytes.fromhex(doc["randoms"]),
            when,
            bytes.fromhex(doc["transaction-req"]),
        )

    def answer_for(self, c_apdu: bytes) -> bytes | None:
        for cmd, resp in self.apdus:
            if cmd == c_apdu:
                return resp
        return None


@dataclass
class TranscriptReader(ScriptedReader):
    """Replays a transcript: each C-APDU must be the next recorded command.

    A READ RECORD the transcript does not hold at all (the published Mastercard
    transcripts leave out SFI 1 record 1, the record with the track data) is answered
    with an empty template ``70 00``, which no ODA record can be. Any other command that
    differs from the recorded one is a mismatch: it is noted in ``mismatches`` and
    answered ``6F00``.
    """

    transcript: Transcript
    synthesised: list[bytes] = field(default_factory=list)
    mismatches: list[tuple[int, bytes, bytes | None]] = field(default_factory=list)
    position: int = 0

    def __post_init__(self) -> None:
        super().__init__(self._answer, f"transcript:{self.transcript.name}")

    def _answer(self, c_apdu: bytes) -> bytes:
        apdus = self.transcript.apdus
        expected = apdus[self.position][0] if self.position < len(apdus) else None
        if c_apdu == expected:
            self.position += 1
            return apdus[self.position - 1][1]
        if c_apdu[1] == 0xB2 and self.transcript.answer_for(c_apdu) is None:
            self.synthesised.append(c_apdu)
            return bytes.fromhex("70009000")
        self.mismatches.append((self.position, c_apdu, expected))
        return b"\x6f\x00"

    @property
    def finished(self) -> bool:
        return self.position == len(self.transcript.apdus)


class SequenceReader(ScriptedReader):
    """Answers the i-th C-APDU with the i-th recorded answer, whatever it is (for
    benchmarks and mutation tests); past the end, ``6A83``."""

    def __init__(self, answers: Sequence[bytes]) -> None:
        self.answers = list(answers)
        super().__init__(self._answer, "scripted:sequence")

    def _answer(self, c_apdu: bytes) -> bytes:
        index = len(self.sent) - 1
        return self.answers[index] if index < len(self.answers) else b"\x6a\x83"


class FakeTimer:
    """A monotonic clock the tests move by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- configurations ------------------------------------------------------------------


def default_kernel2_combination() -> Combination:
    """The Mastercard combination of the built-in configuration."""
    return next(c for c in default_config().combinations if c.kernel_id == b"\x02")


def kernel2_config(
    *,
    terminal: Mapping[int, bytes] | None = None,
    kernel: Mapping[int, bytes] | None = None,
    ca_keys: CaKeyStore | None = None,
    floor: int | None = 0,
    cvm_required: int | None = 5000,
    transaction_limit: int | None = 100_000,
) -> TerminalConfig:
    """The built-in configuration reduced to its kernel 2 combination, with changes."""
    base = default_config()
    combo = default_kernel2_combination()
    combo = replace(
        combo,
        floor_limit=floor,
        terminal_floor_limit=floor,
        cvm_required_limit=cvm_required,
        transaction_limit=transaction_limit,
        kernel_data={**combo.kernel_data, **(kernel or {})},
    )
    return replace(
        base,
        terminal_data={**base.terminal_data, **(terminal or {})},
        combinations=(combo,),
        ca_keys=base.ca_keys if ca_keys is None else ca_keys,
    )


def registry() -> KernelRegistry:
    """A registry with kernel 2 alone (these tests do not depend on kernel 3)."""
    return KernelRegistry([KERNEL])


def tap(
    reader: Reader,
    amount: int,
    *,
    config: TerminalConfig | None = None,
    when: datetime = TODAY,
    rng: Callable[[int], bytes] | None = None,
    timer: Callable[[], float] | None = None,
    currency: bytes | None = None,
    type: int = 0x00,
    other_amount: int = 0,
    trace: list[str] | None = None,
) -> TransactionResult:
    """One transaction through the entry point with kernel 2."""
    kwargs: dict[str, Any] = {"clock": lambda: when}
    if rng is not None:
        kwargs["rng"] = rng
    if timer is not None:
        kwargs["timer"] = timer
    if trace is not None:
        kwargs["trace"] = trace.append
    ep = EntryPoint(config or kernel2_config(), registry(), **kwargs)
    txn = Transaction(amount, other_amount=other_amount, currency=currency, type=type)
    return ep.run(reader, txn, wait=False)


def emulated(card: EmvCard) -> EmulatedReader:
    """The emulated reader driver with ``card`` in its field, activated."""
    reader = EmulatedReader(card)
    reader.wait_for_card(1.0)
    return reader


def fixture_card(name: str, profile: CardProfile | None = None, **kwargs: Any) -> EmvCard:
    """A fixture card, counters in memory."""
    if profile is not None:
        return EmvCard(profile, **kwargs)
    return EmvCard.from_file(CARDS / f"{name}.json", persist=False, **kwargs)


def recertified(profile: CardProfile, *, aip: bytes | None = None, **data: bytes) -> CardProfile:
    """``profile`` with its AIP and/or data objects changed and its ICC certificate
    issued again over the new static data, with the test issuer key of fixtures/ca
    (as scripts/make_fixture_cards.py does). ``data`` keys are hex tags (``DF8303``).
    """
    app = profile.applications[0]
    values = dict(app.data)
    values.update({int(k, 16): v for k, v in data.items()})
    new_aip = app.aip if aip is None else aip
    oda = [
        (r.sfi, encode(0x70, b"".join(encode(t, values[t]) for t in r.tags)))
        for r in app.records
        if r.oda
    ]
    static = build_static_data(oda, aip=new_aip, sda_tag_list=values.get(0x9F4A))
    issuer = SigningKey.from_pem(
        (FIXTURES / "ca" / "test-issuer-mastercard-private.pem").read_bytes()
    )
    assert app.rsa is not None
    icc = SigningKey.from_pem(app.rsa.pem)
    parts = issue_icc_certificate(
        issuer, icc.public, pan=app.pan, static_data=static, expiry=date(2030, 12, 31)
    )
    values[0x9F46] = parts.certificate
    values[0x9F47] = parts.exponent
    if parts.remainder:
        values[0x9F48] = parts.remainder
    else:
        values.pop(0x9F48, None)
    return replace(profile, applications=(replace(app, aip=new_aip, data=values),))


def phone_with_on_device_cvm() -> CardProfile:
    """The Mastercard phone fixture: AIP byte 1 bit 2 (on-device cardholder
    verification supported, Book C-2) set, as a Mastercard wallet declares it."""
    profile = load_profile(CARDS / "mastercard-phone.json")
    assert profile.applications[0].aip[0] & 0x02
    return profile


def phone_without_on_device_cvm() -> CardProfile:
    """The phone fixture re-issued with AIP byte 1 bit 2 clear (and a certificate
    over that AIP, so ODA still passes): a wallet that does not declare CDCVM."""
    profile = load_profile(CARDS / "mastercard-phone.json")
    aip = bytearray(profile.applications[0].aip)
    aip[0] &= ~0x02
    return recertified(profile, aip=bytes(aip))


def transcript_ca_keys() -> CaKeyStore:
    """The CA keys of the transcripts: cfg_default_terminal.json, and FA from
    cfg_test_cert_override.json (fixtures/transcripts/README.md).

    The override file dates its FA key 2017-12-31 while the online transcript was
    recorded on 2020-03-16 (the recording terminal did not enforce CA key expiry);
    kernel 2 refuses an expired CA key, so the FA key is taken without its expiry.
    """
    keys = CaKeyStore.from_terminal_config(
        (TRANSCRIPTS / "cfg_default_terminal.json").read_text(), skip_invalid=True
    )
    override, _ = parse_terminal_config(
        (TRANSCRIPTS / "cfg_test_cert_override.json").read_text(), skip_invalid=True
    )
    fa = next(k for k in override if k.label == "A000000004/FA")
    keys.add(replace(fa, expiry=None), replace=True)
    return keys


def gen_ac_data(sent: Iterable[bytes]) -> bytes:
    """The CDOL1 data of the GENERATE AC among ``sent`` (short C-APDU)."""
    cmd = next(c for c in sent if c[1] == 0xAE)
    return cmd[5 : 5 + cmd[4]]


def fixed_rng(*values: bytes) -> Callable[[int], bytes]:
    """A random source giving ``values`` in turn (then fails the test)."""
    queue = list(values)

    def rng(n: int) -> bytes:
        assert queue, "the kernel drew more random values than the test provided"
        value = queue.pop(0)
        assert len(value) == n
        return value

    return rng
