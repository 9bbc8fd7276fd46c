"""No card holds the terminal hostage through pcscd, and the field goes off after it.

A card served through vpcd that never answers (tests/support/hostile_cards.py): pcscd's
vpcd driver waits for it for ever and ``SCardCancel`` cancels no transmit, so the pcsc
driver abandons the call at the command's deadline (terminal.readers.pcsc). The
transaction ends in "try again" with the reason, ``terminal pay`` exits instead of
hanging, and once the silent card leaves the same reader serves the next card. The
configurations are short so that the tests finish fast; no test asserts a time.

After ``terminal read`` the card is unpowered (``SCARD_UNPOWER_CARD``): another PC/SC
client asking for T=0 alone (as python-emv's emvtool does) connects, where a card left
powered in the T=1 that pcscd chose for the first client refuses it with "Card protocol
mismatch".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from terminal.cli import cli
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Transaction, TransactionResult
from tests.support.cards import VpcdCard
from tests.support.hostile_cards import SilentCard, short_timing, wait_until
from tests.support.kernel import WHEN, card

pytestmark = pytest.mark.pcsc

CONFIG = Path(__file__).resolve().parents[3] / "terminal" / "kernel" / "default_config.json"


@pytest.fixture
def silent_cards() -> Iterator[list[SilentCard]]:
    """Silent cards the test presents: taken away at the end whatever happens (a card
    that holds its command would keep its vpcd presentation for ever)."""
    cards: list[SilentCard] = []
    yield cards
    for silent in cards:
        silent.take_away()


def _pass(reader: object, command_ms: int = 400) -> TransactionResult:
    from terminal.readers.pcsc import PcscReader

    assert isinstance(reader, PcscReader)
    entry = EntryPoint(short_timing(command_ms=command_ms), clock=lambda: WHEN)
    return entry.run(reader, Transaction(1234), timeout=10)


@pytest.mark.parametrize("answers", [0, 2], ids=["silent-at-ppse", "silent-at-gpo"])
def test_a_silent_card_through_pcscd_is_try_again_then_the_reader_serves_the_next(
    vpcd: Callable[..., VpcdCard], silent_cards: list[SilentCard], answers: int
) -> None:
    from terminal.readers.pcsc import PcscReader

    silent = SilentCard(card("visa-card"), answers=answers)
    silent_cards.append(silent)
    served = vpcd(silent)
    with PcscReader(served.reader) as reader:
        result = _pass(reader)
        assert result.outcome is Outcome.TRY_AGAIN, result.reasons
        assert "no answer within 400 ms" in "; ".join(result.reasons)
        assert silent.unanswered == 1
        reader.field_off()  # the application's removal procedure: must not block either

        silent.take_away()  # the silent card leaves; pcscd lets go of the reader
        served.remove()
        good = vpcd(card("visa-card"))  # in the same reader
        result = _pass(reader)
        assert result.outcome is Outcome.ONLINE_REQUEST, result.reasons
        assert [c[1] for c in good.card.seen] == [0xA4, 0xA4, 0xA8]


def test_terminal_pay_with_a_silent_card_exits_with_try_again(
    vpcd: Callable[..., VpcdCard], silent_cards: list[SilentCard], tmp_path: Path
) -> None:
    """The hang of the issue: ``terminal pay --timeout 10`` with a card that never
    answers ran on past 40 s. With the configuration's deadline it ends (exit code 8, try again)."""
    document = json.loads(CONFIG.read_text())
    document["ca_keys"] = [str(CONFIG.parent / key) for key in document["ca_keys"]]
    document["timing"] = {"command_ms": 400, "transaction_ms": 2000}
    config = tmp_path / "short.json"
    config.write_text(json.dumps(document))
    silent = SilentCard(card("visa-card"))
    silent_cards.append(silent)
    served = vpcd(silent)
    arguments = ["pay", "--reader", f"pcsc:{served.reader}", "--amount", "12.34"]
    arguments += ["--config", str(config), "--timeout", "10"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 8, result.output  # try again: the card (clikit.exits)
    assert "try again" in result.output
    assert "no answer within 400 ms" in result.output
    assert "Traceback" not in result.output


def test_after_terminal_read_a_t0_only_client_connects(vpcd: Callable[..., VpcdCard]) -> None:
    from smartcard import scard

    from terminal.readers.pcsc import PROTOCOL_T0, PROTOCOL_T1, ScardCode

    served = vpcd(card("visa-card"))
    rc, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert rc == 0
    try:

        def connect(protocols: int) -> tuple[int, int, int]:
            rc, handle, protocol = scard.SCardConnect(
                context, served.reader, scard.SCARD_SHARE_SHARED, protocols
            )
            return rc & 0xFFFFFFFF, handle, protocol

        def present() -> bool:
            _, states = scard.SCardGetStatusChange(
                context, 0, [(served.reader, scard.SCARD_STATE_UNAWARE)]
            )
            return bool(states[0][1] & scard.SCARD_STATE_PRESENT)

        assert wait_until(present)  # pcscd has seen the card
        # The trap: a first client lets pcscd choose (T=1) and leaves the card powered.
        rc, handle, protocol = connect(PROTOCOL_T0 | PROTOCOL_T1)
        assert (rc, protocol) == (0, PROTOCOL_T1)
        scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        assert connect(PROTOCOL_T0)[0] == ScardCode.E_PROTO_MISMATCH
        rc, handle, _ = connect(PROTOCOL_T0 | PROTOCOL_T1)
        scard.SCardDisconnect(handle, scard.SCARD_UNPOWER_CARD)

        result = CliRunner().invoke(cli, ["read", "--reader", f"pcsc:{served.reader}", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["applications"]
        assert served.card.power_offs >= 1

        rc, handle, protocol = connect(PROTOCOL_T0)  # as emvtool connects
        assert (rc, protocol) == (0, PROTOCOL_T0)
        scard.SCardDisconnect(handle, scard.SCARD_UNPOWER_CARD)
    finally:
        scard.SCardReleaseContext(context)


def test_the_field_goes_off_after_a_transaction_through_pcscd(
    vpcd: Callable[..., VpcdCard],
) -> None:
    from terminal.readers.pcsc import PcscReader

    served = vpcd(card("visa-card"))
    with PcscReader(served.reader) as reader:
        assert _pass(reader).outcome is Outcome.ONLINE_REQUEST
        offs = served.card.power_offs
        reader.field_off()
        assert wait_until(lambda: served.card.power_offs > offs)
        assert reader.card_present()  # unpowered, still in the field
