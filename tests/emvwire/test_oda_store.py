"""CA public key store (EMV Book 2 §11.2): key files, terminal configurations, check sums."""

from __future__ import annotations

import contextlib
import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emvwire.errors import CryptoError, DecodeError, OdaError
from emvwire.oda import CaKey, CaKeyStore, parse_key_file, parse_terminal_config

ROOT = Path(__file__).resolve().parents[2] / "fixtures"
CA_DIR = ROOT / "ca"
TERMINAL_CFG = ROOT / "transcripts" / "cfg_default_terminal.json"
OVERRIDE_CFG = ROOT / "transcripts" / "cfg_test_cert_override.json"
MC = bytes.fromhex("A000000004")
VISA = bytes.fromhex("A000000003")


def _entry(**changes: object) -> dict[str, object]:
    key = json.loads((CA_DIR / "test-ca.json").read_text())["keys"][0]
    key.update(changes)
    return dict(key)


def _file(*entries: dict[str, object]) -> str:
    return json.dumps({"format": "tapstack-capk/1", "keys": list(entries)})


def test_fixture_folder_loads_test_ca_and_transcript_keys() -> None:
    store = CaKeyStore.load(CA_DIR)
    labels = [key.label for key in store]
    assert labels == [
        "A000000003/92",
        "A000000003/F1",
        "A000000004/99",
        "A000000004/F3",
        "A000000004/F8",
        "A000000004/FA",
        "A000000025/E4",
        "A000000333/E7",
        "A000000333/E8",  # SM2, UnionPay's SM suite
    ]
    f1 = store.get(VISA, 0xF1)
    assert (len(f1.modulus), f1.exponent, f1.expiry) == (128, 3, date(2045, 12, 31))
    mc99 = store.get(MC, 0x99)
    assert (len(mc99.modulus), mc99.exponent) == (176, 65537)
    assert (MC, 0xFA) in store
    assert len(store) == 9


def test_published_check_sums_match() -> None:
    # Check sums printed in the public EMV test key lists (and in the cfg file).
    store = CaKeyStore.load(CA_DIR)
    assert store.get(MC, 0xF3).checksum.hex().upper() == "A69AC7603DAF566E972DEDC2CB433E07E8B01A9A"
    assert (
        store.get(VISA, 0x92).checksum.hex().upper() == "429C954A3859CEF91295F663C963E582ED6EB253"
    )
    assert store.get(MC, 0xFA).checksum.hex().upper() == "5BED4068D96EA16D2D77E03D6036FC7A160EA99C"


def test_lookup_failures() -> None:
    store = CaKeyStore.load(CA_DIR)
    with pytest.raises(OdaError, match=r"^no CA public key A000000004/01$"):
        store.get(MC, 0x01)
    assert store.find(MC, 0x01) is None
    assert store.get(VISA, 0xF1, today=date(2045, 12, 31)).index == 0xF1
    with pytest.raises(OdaError, match=r"^CA public key A000000003/F1 has expired$"):
        store.get(VISA, 0xF1, today=date(2046, 1, 1))


def test_json_round_trip_and_repr() -> None:
    store = CaKeyStore.load(CA_DIR)
    again = CaKeyStore.from_json(store.to_json())
    assert list(again) == list(store)
    key = store.get(VISA, 0xF1)
    assert repr(key) == "CaKey(A000000003/F1, 1024-bit, e=3)"
    assert key.modulus.hex().upper() not in repr(key)
    assert repr(store) == "CaKeyStore(9 keys)"


def test_single_key_object_file() -> None:
    (key,) = parse_key_file(json.dumps(_entry()))
    assert key.label == "A000000003/F1"


@pytest.mark.parametrize(
    ("text", "error", "reason"),
    [
        ("{", DecodeError, "not valid JSON"),
        (json.dumps({"format": "other", "keys": []}), DecodeError, "format must be"),
        (_file(_entry(colour="red")), DecodeError, "unknown fields"),
        (_file(_entry(rid="A0000000")), DecodeError, "rid must be 5 bytes"),
        (_file(_entry(modulus="XYZ")), DecodeError, "modulus is not hex"),
        (_file(_entry(exponent="05")), DecodeError, "not 3 or 65537"),
        (_file(_entry(exponent="00000003")), DecodeError, "exponent must be 1 or 3 bytes"),
        (_file(_entry(expiry="2045-13-01")), DecodeError, "expiry is not an ISO date"),
        (_file(_entry(hash_algorithm="02")), DecodeError, "hash algorithm 02"),
        (_file(_entry(modulus="00" + "11" * 127)), DecodeError, "leading zero"),
        (_file(_entry(checksum="00" * 20)), OdaError, "check sum does not match"),
        (json.dumps([1, 2]), DecodeError, "not an object"),
    ],
)
def test_bad_key_files(text: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        parse_key_file(text)


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="cannot read"):
        CaKeyStore.load(tmp_path / "absent.json")


def test_duplicates() -> None:
    store = CaKeyStore.load(CA_DIR)
    key = store.get(VISA, 0xF1)
    store.add(key)  # the same key again is harmless
    other = CaKey(rid=VISA, index=0xF1, modulus=store.get(MC, 0xF8).modulus, exponent=3)
    with pytest.raises(OdaError, match="already stored with another key"):
        store.add(other)
    store.add(other, replace=True)
    assert store.get(VISA, 0xF1) is other


def test_ca_key_validation() -> None:
    modulus = bytes.fromhex("C1") + bytes(126) + b"\x01"
    with pytest.raises(CryptoError, match="RID must be 5 bytes"):
        CaKey(rid=b"\xa0", index=1, modulus=modulus, exponent=3)
    with pytest.raises(CryptoError, match="not one byte"):
        CaKey(rid=VISA, index=256, modulus=modulus, exponent=3)
    with pytest.raises(CryptoError, match="exceeds 248"):
        CaKey(rid=VISA, index=1, modulus=b"\xc1" * 249, exponent=3)
    with pytest.raises(CryptoError, match="even"):
        CaKey(rid=VISA, index=1, modulus=b"\xc2" * 128, exponent=3)


def test_terminal_config_strict_stops_at_the_first_bad_check_sum() -> None:
    with pytest.raises(OdaError, match=r"^CA public key A000000004/F5: check sum does not match$"):
        parse_terminal_config(TERMINAL_CFG.read_text())


def test_terminal_config_lenient_lists_what_it_left_out() -> None:
    store = CaKeyStore.from_terminal_config(TERMINAL_CFG.read_bytes(), skip_invalid=True)
    assert len(store) == 29
    assert [where for where, _ in store.rejected] == [
        "A000000004/F5",
        "A000000003/08",
        "A000000003/51",
        "A000000003/53",
        "A000000003/58",
    ]
    assert "public key algorithm 10 is not supported" in store.rejected[1][1]
    # Keys without a check sum (AD) or without expiry (FA, EF) are accepted as given.
    ad = store.get(MC, 0xAD)
    assert (len(ad.modulus), ad.expiry) == (144, date(2020, 12, 31))
    fa = store.get(MC, 0xFA)
    assert (len(fa.modulus), fa.expiry) == (160, None)
    # Visa 50 uses exponent 65537.
    assert store.get(VISA, 0x50).exponent == 65537


def test_override_config_has_the_1152_bit_fa_key() -> None:
    keys, rejected = parse_terminal_config(OVERRIDE_CFG.read_text(), skip_invalid=True)
    fa = next(k for k in keys if k.label == "A000000004/FA")
    assert len(fa.modulus) == 144
    # The override file repeats a check sum for 99 and for a made-up RID F105000003.
    assert [where for where, _ in rejected] == ["A000000003/99", "F105000003/92"]


@pytest.mark.parametrize(
    "config",
    [
        "[]",
        '{"publicKey": 3}',
        '{"publicKey": [3]}',
        '{"publicKey": [{"rId": "A000000003", "index": "01", "modulus": "C3", "exponent": "03",'
        ' "hashAlgorithmIndicator": true}]}',
        '{"publicKey": [{"rId": "A000000003", "index": "01", "modulus": "C3", "exponent": "03",'
        ' "expiryDate": "1312"}]}',
    ],
)
def test_bad_terminal_configs(config: str) -> None:
    with pytest.raises(DecodeError):
        parse_terminal_config(config)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=10,
)
_FIELDS = st.sampled_from(
    ["rid", "index", "modulus", "exponent", "expiry", "checksum", "hash_algorithm", "rId"]
)


@settings(max_examples=100, deadline=None)
@given(doc=_JSON, fields=st.dictionaries(_FIELDS, _JSON | st.text("0123456789ABCDEF", max_size=12)))
def test_garbage_key_files_raise_only_emvwire_errors(
    doc: object, fields: dict[str, object]
) -> None:
    for text in (json.dumps(doc), _file(fields), json.dumps({"publicKey": [doc, fields]})):
        for parse in (parse_key_file, parse_terminal_config):
            with contextlib.suppress(DecodeError, OdaError):
                parse(text)
