"""Kernels 4 and 7 against a real issuer: ``issuer init`` (SQLite) and ``issuer serve``
as processes, cards provisioned with ``issuer card provision --scheme amex|unionpay``
(UnionPay also from a card range of the SM suite, ``issuer range add --cvn 4``), each
tapped through the in-process emulated reader to an approved online authorisation
whose ARPC the card's own keys verify, then a decline (insufficient funds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from card.emv import EmvCard
from emvwire.crypto import cvn_spec, verify_arpc
from emvwire.profile import load_profile
from emvwire.tags import Tag
from emvwire.tlv import decode_flat
from hostlink import HostClient
from issuer.domain.field55 import cryptogram_data
from terminal.kernel.config import default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers.emulated import EmulatedReader
from tests.support.e2e import (
    IssuerService,
    add_terminal,
    init_issuer,
    issuer_cli,
    new_account,
    provision_card,
    serve_issuer,
)

#: An issuer init and service of its own: about 15 s (RSA keys of four schemes).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerService]:
    home = tmp_path_factory.mktemp("issuer") / "home"
    env = init_issuer(home)
    issuer_cli(env, "range", "add", "--scheme", "unionpay", "--prefix", "625802", "--cvn", "4")
    issuer_cli(env, "keys", "generate", "--scheme", "unionpay", "--bin", "625802", "--cvn", "4")
    terminal = add_terminal(env, "Corner shop", "5411")
    with serve_issuer(env) as url:
        yield IssuerService(env, url, terminal)


def _tap(card: EmvCard, amount: int) -> TransactionResult:
    reader = EmulatedReader(card)
    reader.wait_for_card()
    result = EntryPoint(default_config()).run(reader, Transaction(amount), wait=False)
    assert result.outcome is Outcome.ONLINE_REQUEST, result
    return result


def _check_arpc(result: TransactionResult, icc_mk: bytes, cvn: int, iad91: bytes) -> None:
    """The issuer's ARPC, as the card would check it (Book 2 §8.2)."""
    f55 = decode_flat(result.authorisation_data)
    data = cryptogram_data(f55)  # what the issuer verified the ARQC over
    arqc = f55[Tag.APPLICATION_CRYPTOGRAM]
    if cvn_spec(cvn).arpc_method == 1:
        verify_arpc(cvn, icc_mk, data, arqc, iad91[:8], arc=iad91[8:])
    else:
        verify_arpc(cvn, icc_mk, data, arqc, iad91[:4], csu=iad91[4:])


@pytest.mark.parametrize(
    ("scheme", "options", "cvn"),
    [("amex", (), 0xA5), ("unionpay", (), 0x01), ("unionpay", ("--range", "625802"), 0x04)],
    ids=["amex", "unionpay-tdes", "unionpay-sm4"],
)
def test_a_tap_is_approved_online_by_the_issuer_then_declined_beyond_funds(
    issuer: IssuerService, tmp_path: Path, scheme: str, options: tuple[str, ...], cvn: int
) -> None:
    account = new_account(issuer.env, "Li Lei", "50.00")
    profile = tmp_path / "card.json"
    provision_card(issuer.env, account, profile, *options, scheme=scheme)
    card = EmvCard(load_profile(profile))
    app = card.applications[0].app
    assert app.cvn == cvn
    with HostClient(issuer.url, issuer.terminal_id, issuer.key, tls=issuer.terminal.tls,
                    timeout=10.0) as host:  # fmt: skip
        result = _tap(card, 1234)
        outcome = host.authorise(result.authorisation_data, result.track2)
        assert (outcome.approved, outcome.response_code) == (True, "00"), outcome
        _check_arpc(result, app.keys.ac, cvn, outcome.issuer_authentication_data)
        big = _tap(card, 6000)
        declined = host.authorise(big.authorisation_data, big.track2)
        assert (declined.approved, declined.reason) == (False, "INSUFFICIENT_FUNDS")
    assert issuer.account_balance(account) == (5000, 1234)
