"""Transcript replay: the public Visa transcripts (fixtures/transcripts, from
MohamedHassanNasr/emv) through a scripted card. The kernel must send exactly the
recorded commands, byte for byte, given the recorded unpredictable number and date,
and reach the recorded outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emvwire import tlv
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Cvm, OdaResult, Transaction, TransactionResult
from tests.support.kernel import ReplayCard, ScriptedCard, config, tap

LIMITS = {"floor_limit": 0, "cvm_required_limit": 5000, "transaction_limit": 100000}


def _replay(
    card: ScriptedCard, doc: dict[str, Any], un: bytes | None = None, **limits: int
) -> TransactionResult:
    req = tlv.flatten(tlv.decode(bytes.fromhex(doc["transaction-req"])))
    amount = int(req[0x9F02].hex())
    un = un or bytes.fromhex(doc["randoms"])
    when = datetime.strptime(doc["date"] + doc["time"], "%y%m%d%H%M%S")
    visa: dict[str, Any] = {**LIMITS, **limits, "ttq": bytes.fromhex("24004000")}
    cfg = config(terminal={0x9F1A: req[0x5F2A], 0x5F2A: req[0x5F2A]}, **visa)
    txn = Transaction(amount, type=req[0x9C][0])
    return tap(card, cfg=cfg, rng=lambda n: un[:n], when=when, txn=txn)


def test_visa_online_transcript() -> None:
    card, doc = ScriptedCard.from_transcript("mock-visa-online.json")
    result = _replay(card, doc)
    assert card.mismatches == []
    assert card.done
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.cvm is Cvm.ONLINE_PIN  # CTQ 9000: online PIN required
    assert result.apdu_count == 3
    f55 = tlv.flatten(tlv.decode(result.authorisation_data))
    assert f55[0x9F26] == bytes.fromhex("48325309BE82CBA2")
    assert f55[0x9F37] == bytes.fromhex("ABABABAB")
    assert f55[0x9F66] == bytes.fromhex("24C04000")
    assert result.masked_pan == "476173******0010"


def test_visa_offline_transcript() -> None:
    card, doc = ScriptedCard.from_transcript("mock-visa-offline.json")
    result = _replay(card, doc, floor_limit=5000)
    assert card.mismatches == []
    assert card.done
    assert result.outcome is Outcome.APPROVED, result.reasons
    assert result.oda is OdaResult.PASSED
    assert result.cvm is Cvm.NO_CVM
    assert result.apdu_count == 6


def test_a_replayed_answer_fails_under_a_fresh_un() -> None:
    """Pre-play (Bond et al. 2014): answers recorded under UN ABABABAB, replayed to a
    terminal drawing another UN, fail fDDA; the CTQ (0000) asks for no online
    fallback, so the offline approval is declined."""
    scripted, doc = ScriptedCard.from_transcript("mock-visa-offline.json")
    card = ReplayCard(scripted.exchanges)
    result = _replay(card, doc, un=bytes.fromhex("01020304"), floor_limit=5000)
    assert result.outcome is Outcome.DECLINED
    assert result.oda is OdaResult.FAILED
    assert any("fDDA failed" in r for r in result.reasons)
