"""Kernel ids, the registry, and the kernel context."""

from __future__ import annotations

from dataclasses import replace

import pytest

from emvwire.apdu import select
from terminal.kernel.config import default_config
from terminal.kernel.k3.flow import KERNEL
from terminal.kernel.outcome import Outcome
from terminal.kernel.registry import (
    BUILTIN_KERNEL_MODULES,
    Kernel,
    KernelContext,
    KernelRegistry,
    PreProcessing,
    default_kernel_id,
    default_registry,
)
from terminal.kernel.transaction import Transaction
from terminal.readers.emulated import EmulatedReader
from tests.support.cards import VISA_AID
from tests.support.kernel import WHEN, card

MC_AID = bytes.fromhex("A0000000041010")


def test_default_kernel_by_rid() -> None:
    assert default_kernel_id(bytes.fromhex("A000000025010801")) == b"\x04"
    assert default_kernel_id(bytes.fromhex("A000000065")) == b"\x05"


def test_registry() -> None:
    registry = KernelRegistry([KERNEL])
    assert b"\x03" in registry
    assert registry.get(b"\x03") is KERNEL
    assert isinstance(KERNEL, Kernel)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(replace(KERNEL))
    registry.register(replace(KERNEL), replace=True)

    class Bad:
        kernel_id = b"\x01\x02"
        name = "bad"

        def activate(self, ctx: KernelContext) -> object:
            return None

    with pytest.raises(ValueError, match="neither 1 nor 3"):
        registry.register(Bad())  # type: ignore[arg-type]
    assert repr(registry) == "KernelRegistry(03)"
    assert len(registry) == 1
    assert next(iter(registry)).kernel_id == b"\x03"


def test_default_registry_loads_the_modules_that_exist() -> None:
    assert BUILTIN_KERNEL_MODULES[0] == "terminal.kernel.k3.flow"
    registry = default_registry()
    assert b"\x03" in registry
    only = default_registry(["terminal.kernel.k3.flow", "terminal.kernel.no_such_kernel"])
    assert only.ids() == [b"\x03"]


def _context(rng_calls: list[int]) -> KernelContext:
    cfg = default_config()

    def rng(n: int) -> bytes:
        rng_calls.append(n)
        return bytes(range(n))

    reader = EmulatedReader(card("visa-card"))
    reader.wait_for_card()
    return KernelContext(
        reader=reader,
        config=cfg,
        combination=cfg.combinations[0],
        aid=VISA_AID,
        fci=b"",
        fci_sw=0x9000,
        indicators=PreProcessing(ttq=bytes.fromhex("27004000")),
        transaction=Transaction(1234, when=WHEN),
        rng=rng,
    )


def test_context_terminal_data_and_un() -> None:
    calls: list[int] = []
    ctx = _context(calls)
    data = ctx.terminal_data()
    assert data[0x9F66] == bytes.fromhex("27004000")
    assert data[0x9F37] == bytes.fromhex("00010203")
    assert data[0x9F02] == bytes.fromhex("000000001234")
    assert data[0x9F1A] == bytes.fromhex("0250")
    assert data[0x95] == bytes(5)
    assert ctx.terminal_data()[0x9F37] == data[0x9F37]
    assert calls == [4]  # drawn once


def test_context_exchange_counts_and_times() -> None:
    ctx = _context([])
    answer = ctx.exchange(select("2PAY.SYS.DDF01"))
    assert answer.sw == 0x9000
    assert ctx.apdu_count == 1
    assert ctx.card_seconds > 0
    with ctx.step("x"):
        pass
    assert "x" in ctx.timings_ms
    result = ctx.result(Outcome.DECLINED, kernel="k")
    assert result.apdu_count == 1
    assert "total" in result.timings_ms
    assert "KernelContext(A0000000031010" in repr(ctx)


def test_a_bad_random_source_is_refused() -> None:
    ctx = _context([])
    ctx.rng = lambda n: b"\x01"
    with pytest.raises(ValueError, match="4 bytes"):
        _ = ctx.unpredictable_number
