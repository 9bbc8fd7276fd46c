"""Kernel 2's relay resistance protocol (Book C-2 §5.3) with an injected monotonic timer.

The reader moves a fake timer forward by the card's "processing time" when it
answers EXCHANGE RELAY RESISTANCE DATA, so the kernel measures exactly that. The
fixture card gives DF8303 = 0 (min), DF8304 = 50 (5.0 ms max) and DF8305 = 18 (1.8 ms)
in 100 us units; the built-in configuration DF8132 2.0 ms, DF8133 5.0 ms, DF8134 1.8
ms, DF8135 2.4 ms, DF8136 30 ms, DF8137 50 %. Measured = max(0, elapsed - 1.8 ms -
min(1.8, 2.4) ms): the limit is max + grace = 10 ms, i.e. 13.6 ms elapsed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from card.emv import EmvCard
from emvwire.profile import CardProfile, load_profile
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import TransactionResult
from tests.terminal.kernel.kernel2_helpers import (
    CARDS,
    CardReader,
    FakeTimer,
    fixed_rng,
    gen_ac_data,
    kernel2_config,
    recertified,
    tap,
)

ERRD, READ = 0xEA, 0xB2
ENTROPY = [bytes.fromhex(h) for h in ("11111111", "22222222", "33333333")]


def timed_reader(
    delays_ms: Sequence[float], timer: FakeTimer, profile: CardProfile | None = None
) -> CardReader:
    """The fixture card, taking ``delays_ms[i]`` to answer the i-th ERRD."""
    delays = list(delays_ms)

    def hook(c_apdu: bytes, answer: bytes) -> bytes:
        if c_apdu[1] == ERRD:
            timer.advance(delays.pop(0) / 1000.0)
        return answer

    card = EmvCard(profile or load_profile(CARDS / "mastercard-card.json"))
    return CardReader(card, hook)


def run(
    delays_ms: Sequence[float],
    *,
    profile: CardProfile | None = None,
    kernel: dict[int, bytes] | None = None,
    rng: Callable[[int], bytes] | None = None,
) -> tuple[CardReader, TransactionResult]:
    timer = FakeTimer()
    reader = timed_reader(delays_ms, timer, profile)
    result = tap(
        reader,
        1000,
        config=kernel2_config(kernel=kernel),
        timer=timer,
        rng=rng or fixed_rng(*ENTROPY),
    )
    return reader, result


def entropies(reader: CardReader) -> list[bytes]:
    return [c[5:9] for c in reader.sent if c[1] == ERRD]


def test_within_limits_passes_once_and_records_the_measured_time() -> None:
    reader, result = run([8.0])
    assert entropies(reader) == ENTROPY[:1]
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.tvr[4] == 0x02  # RRP performed, no limit exceeded
    assert result.data[0xDF8306] == (80 - 18 - 18).to_bytes(2, "big")  # 100 us units
    assert result.data[0xDF8307] == b"\x00"
    assert len(result.data[0xDF8302]) == 4  # the card's entropy, kept for the record
    assert result.data[0xDF8304] == bytes.fromhex("0032")
    assert gen_ac_data(reader.sent)[25:29] == ENTROPY[0]


def test_too_slow_retries_twice_with_new_entropy_then_sets_the_tvr_bit() -> None:
    reader, result = run([20.0, 20.0, 20.0])
    assert entropies(reader) == ENTROPY  # three exchanges, fresh entropy each time
    assert result.tvr[4] == 0x04 | 0x02  # time limits exceeded, RRP performed
    # The last entropy is the Unpredictable Number GENERATE AC signs over.
    assert gen_ac_data(reader.sent)[25:29] == ENTROPY[2]
    assert result.data[0x9F37] == ENTROPY[2]
    assert result.data[0xDF8307] == b"\x02"
    assert result.outcome is Outcome.ONLINE_REQUEST  # TAC online holds the RR bits
    assert "relay resistance time limits exceeded" in result.reasons


def test_slow_once_then_in_time_passes_without_the_bit() -> None:
    reader, result = run([20.0, 3.0])
    assert entropies(reader) == ENTROPY[:2]
    assert result.tvr[4] == 0x02
    assert gen_ac_data(reader.sent)[25:29] == ENTROPY[1]


def test_far_too_slow_also_exceeds_the_accuracy_threshold() -> None:
    _, result = run([40.0, 40.0, 40.0])
    assert result.tvr[4] == 0x08 | 0x04 | 0x02


def test_answering_faster_than_the_cards_minimum_aborts() -> None:
    """A card claiming 10 ms minimum processing that answers in 0.5 ms: a relay's
    cached answer or an impostor. The kernel stops before reading any record."""
    profile = load_profile(CARDS / "mastercard-card.json")
    app = profile.applications[0]
    data = {**app.data, 0xDF8303: bytes.fromhex("0064"), 0xDF8304: bytes.fromhex("00C8")}
    profile = replace(profile, applications=(replace(app, data=data),))
    reader, result = run([0.5], profile=profile)
    assert result.outcome is Outcome.END_APPLICATION
    assert READ not in reader.ins_sent()
    assert (
        "relay resistance: the card answered in 0 us, below its minimum processing time "
        "(10000 us)" in result.reasons
    )


def test_grace_periods_come_from_the_kernel_data() -> None:
    """A reader behind USB configures a larger maximum grace period (DF8133 40 ms)."""
    reader, result = run([20.0], kernel={0xDF8133: (400).to_bytes(2, "big")})
    assert len(entropies(reader)) == 1
    assert result.tvr[4] == 0x02


def test_transmission_time_mismatch_exceeds_the_threshold() -> None:
    """DF8305 0.2 ms against DF8135 2.4 ms: 8 % < DF8137 50 %."""
    profile = load_profile(CARDS / "mastercard-card.json")
    app = profile.applications[0]
    profile = replace(
        profile, applications=(replace(app, data={**app.data, 0xDF8305: b"\x00\x02"}),)
    )
    _, result = run([3.0], profile=profile)
    assert result.tvr[4] == 0x08 | 0x02


def test_kernel_configuration_without_rrp_sends_no_exchange() -> None:
    reader, result = run([], kernel={0xDF811B: b"\x20"}, rng=fixed_rng(ENTROPY[0]))
    assert ERRD not in reader.ins_sent()
    assert result.tvr[4] == 0x01  # RRP not performed
    assert result.outcome is Outcome.ONLINE_REQUEST


def test_card_without_rrp_in_its_aip_gets_no_exchange() -> None:
    profile = recertified(load_profile(CARDS / "mastercard-card.json"), aip=bytes.fromhex("1980"))
    reader, result = run([], profile=profile, rng=fixed_rng(ENTROPY[0]))
    assert ERRD not in reader.ins_sent()
    assert result.tvr[4] == 0x01
    assert result.oda.value == "passed"
