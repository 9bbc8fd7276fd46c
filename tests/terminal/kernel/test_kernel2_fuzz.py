"""Kernel 2 against mutated card answers (hypothesis): always an outcome with a reason,
never an exception, and never an approval or online request that hides a failed CDA.

The answers of two good taps are recorded once (the fixture card online with CDA, and
the public offline transcript approved with CDA), then replayed in order with one
answer from GPO on mutated: a byte flipped, the answer cut or lengthened, the status
word replaced, or the whole answer replaced by random bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terminal.kernel.config import TerminalConfig
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import OdaResult
from tests.terminal.kernel.kernel2_helpers import (
    CardReader,
    SequenceReader,
    Transcript,
    TranscriptReader,
    fixed_rng,
    fixture_card,
    kernel2_config,
    tap,
    transcript_ca_keys,
)


@dataclass(frozen=True)
class Recorded:
    answers: tuple[bytes, ...]
    amount: int
    currency: bytes
    config: TerminalConfig
    when: object
    un: bytes
    outcome: Outcome


def _recording(reader: CardReader | TranscriptReader) -> list[bytes]:
    answers: list[bytes] = []
    inner = reader.answer

    def log(c_apdu: bytes) -> bytes:
        answer = inner(c_apdu)
        answers.append(answer)
        return answer

    reader.answer = log
    return answers


@cache
def recorded(name: str) -> Recorded:
    if name == "fixture":
        reader = CardReader(fixture_card("mastercard-card"))
        answers = _recording(reader)
        un = bytes.fromhex("5EED5EED")
        config = kernel2_config()
        result = tap(reader, 1000, config=config, rng=fixed_rng(un))
        when: object = None
        currency = b"\x09\x78"
    else:
        t = Transcript.load("mock-msc-offline")
        treader = TranscriptReader(t)
        answers = _recording(treader)
        un = t.randoms
        config = kernel2_config(
            terminal={0x9F1A: b"\x00\x56", 0x9F35: b"\x26", 0x9F40: bytes.fromhex("6000F00001")},
            ca_keys=transcript_ca_keys(),
            floor=10_000,
        )
        currency = b"\x09\x78"
        result = tap(treader, 1, config=config, rng=fixed_rng(un), when=t.when, currency=currency)
        when = t.when
    assert result.oda is OdaResult.PASSED
    amount = 1000 if name == "fixture" else 1
    return Recorded(tuple(answers), amount, currency, config, when, un, result.outcome)


def _mutate(answer: bytes, kind: str, position: int, byte: int, junk: bytes) -> bytes:
    if kind == "junk":
        return junk
    if not answer:
        return bytes((byte,))
    i = position % len(answer)
    if kind == "flip":
        return answer[:i] + bytes((answer[i] ^ (byte or 1),)) + answer[i + 1 :]
    if kind == "cut":
        return answer[:i]
    if kind == "insert":
        return answer[:i] + bytes((byte,)) + answer[i:]
    return answer[:-2] + bytes((byte, position & 0xFF))  # "sw"


def _never_raises(name: str) -> Callable[..., None]:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        which=st.integers(min_value=2, max_value=9),
        position=st.integers(min_value=0, max_value=400),
        kind=st.sampled_from(["flip", "cut", "insert", "sw", "junk"]),
        byte=st.integers(min_value=0, max_value=255),
        junk=st.binary(max_size=40),
    )
    def check(which: int, position: int, kind: str, byte: int, junk: bytes) -> None:
        rec = recorded(name)
        answers = list(rec.answers)
        which %= len(answers)
        which = max(which, 2)  # SELECT PPSE and SELECT AID are the entry point's
        answers[which] = _mutate(answers[which], kind, position, byte, junk)
        kwargs = {} if rec.when is None else {"when": rec.when}
        result = tap(
            SequenceReader(answers),
            rec.amount,
            config=rec.config,
            rng=fixed_rng(rec.un, rec.un, rec.un),
            currency=rec.currency,
            **kwargs,  # type: ignore[arg-type]
        )
        assert isinstance(result.outcome, Outcome)
        assert result.reasons
        assert not any(r.startswith("internal error") for r in result.reasons), result.reasons
        if result.outcome is Outcome.APPROVED:
            assert result.oda is OdaResult.PASSED, result.reasons
        if result.outcome is Outcome.ONLINE_REQUEST:
            # Online with a failed CDA only when the TVR tells the issuer so.
            assert result.oda is OdaResult.PASSED or result.tvr[0] & 0x04, result.reasons

    return check


test_mutated_fixture_card_answers_end_in_a_defined_outcome = _never_raises("fixture")
test_mutated_offline_transcript_answers_end_in_a_defined_outcome = _never_raises("offline")


def test_recordings_replay_unchanged() -> None:
    """The unmutated recordings give their outcome back (the fuzz baseline)."""
    for name, expected in (("fixture", Outcome.ONLINE_REQUEST), ("offline", Outcome.APPROVED)):
        rec = recorded(name)
        assert rec.outcome is expected
        kwargs = {} if rec.when is None else {"when": rec.when}
        result = tap(
            SequenceReader(rec.answers),
            rec.amount,
            config=rec.config,
            rng=fixed_rng(rec.un),
            currency=rec.currency,
            **kwargs,  # type: ignore[arg-type]
        )
        assert result.outcome is expected
        assert result.oda is OdaResult.PASSED
