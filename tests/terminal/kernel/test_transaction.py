"""Transaction requests, results (masked), field 55, card reference, currencies."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path

import pytest

from emvwire import tlv
from emvwire.cardref import DEMO_CARD_REFERENCE_KEY, card_reference
from emvwire.contract import FIELD_55_TAGS
from emvwire.errors import OdaError
from emvwire.track2 import track2_expiry, track2_pan
from terminal.kernel.config import (
    NO_CA_KEYS,
    ConfigError,
    default_config,
    load_config,
)
from terminal.kernel.outcome import Outcome, Start, UiMessage
from terminal.kernel.transaction import (
    Cvm,
    Transaction,
    authorisation_data,
    bcd,
    build_result,
)
from tests.support.cards import VISA_PAN
from tests.support.kernel import card, tap

TRACK2 = bytes.fromhex("4761739001010010D30122010000000000")


def test_transaction_data_objects() -> None:
    txn = Transaction(1234, 500, type=0x09, when=datetime(2026, 3, 1, 9, 5, 7))
    data = txn.data(b"\x09\x78")
    assert data[0x9F02] == bytes.fromhex("000000001234")
    assert data[0x9F03] == bytes.fromhex("000000000500")
    assert data[0x5F2A] == bytes.fromhex("0978")
    assert data[0x9C] == b"\x09"
    assert data[0x9A] == bytes.fromhex("260301")
    assert data[0x9F21] == bytes.fromhex("090507")
    assert Transaction(1, currency=bytes.fromhex("0840")).data(b"\x09\x78")[0x5F2A] == b"\x08\x40"
    assert 0x9A not in Transaction(1).data(b"\x09\x78")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"amount": -1},
        {"amount": 10**12},
        {"amount": 1, "other_amount": -5},
        {"amount": 1, "currency": b"\x09"},
        {"amount": 1, "type": 256},
    ],
)
def test_transaction_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"minor units|5F2A|9C"):
        Transaction(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Transaction(True)


def test_bcd() -> None:
    assert bcd(1234, 6) == bytes.fromhex("000000001234")
    with pytest.raises(ValueError, match="does not fit"):
        bcd(100, 1)


def test_track2_helpers() -> None:
    assert track2_pan(TRACK2) == VISA_PAN
    assert track2_expiry(TRACK2) == bytes.fromhex("3012")
    assert track2_pan(bytes.fromhex("4761739001010010")) == ""
    assert track2_expiry(bytes.fromhex("47D3")) == b""


def test_card_reference_is_a_keyed_hash_not_the_pan() -> None:
    ref = card_reference(DEMO_CARD_REFERENCE_KEY, VISA_PAN, b"\x01")
    expected = hmac.new(DEMO_CARD_REFERENCE_KEY, b"4761739001010010|01", hashlib.sha256)
    assert ref == expected.hexdigest()[:32]
    assert len(ref) == 32
    assert int(ref, 16) >= 0
    assert VISA_PAN not in ref
    assert "0010" not in ref[:4]
    assert ref != card_reference(DEMO_CARD_REFERENCE_KEY, VISA_PAN, b"\x02")
    assert ref != card_reference(bytes(32), VISA_PAN, b"\x01")
    assert card_reference(bytes(32), VISA_PAN) == card_reference(bytes(32), VISA_PAN, None)
    assert hashlib.sha256(b"tapstack demo card reference key").digest() == DEMO_CARD_REFERENCE_KEY


def test_card_reference_key_in_the_configuration(tmp_path: Path) -> None:
    assert default_config().card_reference_key == DEMO_CARD_REFERENCE_KEY
    doc = json.loads((Path("terminal/kernel/default_config.json")).read_text())
    doc["ca_keys"] = []
    doc["card_reference_key"] = "00" * 32
    (tmp_path / "c.json").write_text(json.dumps(doc))
    assert load_config(tmp_path / "c.json").card_reference_key == bytes(32)
    doc["card_reference_key"] = "0011"
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="card_reference_key"):
        load_config(tmp_path / "c.json")
    doc["card_reference_key"] = "00" * 32
    doc["combinations"][0]["unverified_cdcvm"] = "trust"
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="unverified_cdcvm"):
        load_config(tmp_path / "c.json")
    assert "card_reference_key" not in repr(default_config())


def test_a_configuration_loaded_without_its_ca_keys(tmp_path: Path) -> None:
    """``ca_keys=False`` (``terminal read``): the key files are neither read nor checked,
    and a kernel that asked for a key would find none, as for a card of an unknown CA."""
    full = default_config()
    bare = default_config(ca_keys=False)
    assert full.ca_keys.find(bytes.fromhex("A000000003"), 0x92) is not None
    assert bare.ca_keys is NO_CA_KEYS
    assert bare.ca_keys.find(bytes.fromhex("A000000003"), 0x92) is None
    with pytest.raises(OdaError, match=r"no CA public key A000000003/92: .* without its CA keys"):
        bare.ca_keys.get(bytes.fromhex("A000000003"), 0x92)
    assert (bare.terminal_data, bare.combinations) == (full.terminal_data, full.combinations)
    doc = json.loads((Path("terminal/kernel/default_config.json")).read_text())
    doc["ca_keys"] = ["no-such-folder"]
    (tmp_path / "c.json").write_text(json.dumps(doc))
    assert load_config(tmp_path / "c.json", ca_keys=False).ca_keys is NO_CA_KEYS
    with pytest.raises(ConfigError, match=r"ca_keys\[0\]: .*no-such-folder does not exist"):
        load_config(tmp_path / "c.json")


def test_authorisation_data_keeps_the_field_55_order() -> None:
    values = {0x9F02: b"\x00" * 6, 0x9F26: b"\x11" * 8, 0x57: TRACK2, 0x82: b"\x20\x00"}
    blob = authorisation_data(values)
    assert [t.tag for t in tlv.decode(blob)] == [0x9F26, 0x9F02, 0x82]
    assert 0x57 not in FIELD_55_TAGS
    assert 0x5A not in FIELD_55_TAGS


def test_results_are_masked_everywhere() -> None:
    result = tap(card("visa-card"), 6000)
    texts = [repr(result), str(result), json.dumps(result.summary())]
    for text in texts:
        assert VISA_PAN not in text
        assert TRACK2.hex().upper() not in text.upper()
    assert result.summary()["track2"] == result.masked_track2
    assert result.masked_track2.startswith("476173******0010D")
    assert result.summary()["card_reference"] == result.card_reference


def test_build_result_ui_and_parameters() -> None:
    cfg = default_config()
    txn = Transaction(500)
    signed = build_result(Outcome.APPROVED, config=cfg, transaction=txn, cvm=Cvm.SIGNATURE)
    assert signed.ui[-1].message is UiMessage.APPROVED_PLEASE_SIGN
    assert signed.parameters.receipt
    assert signed.signature_required
    again = build_result(Outcome.TRY_AGAIN, config=cfg, transaction=txn)
    assert again.parameters.start is Start.B
    assert again.parameters.ui_on_outcome is None
    assert again.parameters.ui_on_restart is not None
    nxt = build_result(Outcome.SELECT_NEXT, config=cfg, transaction=txn)
    assert nxt.parameters.start is Start.C
    assert nxt.ui == []
    other = build_result(Outcome.TRY_ANOTHER_INTERFACE, config=cfg, transaction=txn)
    assert other.parameters.encode()[5] >> 4 == 0x1  # contact chip
    no_crypto = build_result(Outcome.DECLINED, config=cfg, transaction=txn, data={0x82: b"\0\0"})
    assert no_crypto.authorisation_data == b""
    assert no_crypto.parameters.encode()[0] == 0x20
