"""Card profiles: the fixture cards load, round-trip, certify, and bad input is located."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from emvwire import tlv
from emvwire.crypto.kdf import derive_icc_mk_a
from emvwire.oda import (
    CaKeyStore,
    SigningKey,
    build_static_data,
    recover_icc_key,
    recover_issuer_key,
)
from emvwire.profile import ProfileError, load_profile, parse_profile

FIXTURES = Path(__file__).parents[2] / "fixtures"
#: The fixture card profiles, by name: a glob would also take whatever else a user left
#: in that folder.
CARDS = [
    FIXTURES / "cards" / f"{name}.json"
    for name in ("visa-card", "visa-phone", "mastercard-card", "mastercard-phone")
]
MASTER_KEYS = json.loads((FIXTURES / "issuer" / "test-master-keys.json").read_text())


def test_there_are_four_fixture_cards() -> None:
    assert all(p.is_file() for p in CARDS)


@pytest.mark.parametrize("path", CARDS, ids=lambda p: p.stem)
def test_fixture_round_trips(path: Path) -> None:
    raw = json.loads(path.read_text())
    profile = load_profile(path)
    assert profile.to_json() == raw


@pytest.mark.parametrize("path", CARDS, ids=lambda p: p.stem)
def test_icc_keys_derive_from_the_published_master_keys(path: Path) -> None:
    app = load_profile(path).applications[0]
    imk = bytes.fromhex(MASTER_KEYS["schemes"][app.kernel]["ac"])
    assert app.keys.ac == derive_icc_mk_a(imk, app.pan, app.psn)


@pytest.mark.parametrize("path", CARDS, ids=lambda p: p.stem)
def test_certificate_chain_verifies_with_the_test_ca(path: Path) -> None:
    app = load_profile(path).applications[0]
    store = CaKeyStore.load(FIXTURES / "ca")
    ca = store.get(app.aid[:5], app.data[0x8F][0])
    issuer = recover_issuer_key(
        ca,
        app.data[0x90],
        app.data.get(0x92, b""),
        app.data[0x9F32],
        pan=app.pan,
        today=date(2026, 11, 23),
    )
    oda = [
        (r.sfi, tlv.encode(0x70, b"".join(tlv.encode(t, app.data[t]) for t in r.tags)))
        for r in app.records
        if r.oda
    ]
    static = build_static_data(oda, aip=app.aip, sda_tag_list=app.data.get(0x9F4A))
    icc = recover_icc_key(
        issuer,
        app.data[0x9F46],
        app.data.get(0x9F48, b""),
        app.data[0x9F47],
        pan=app.pan,
        static_data=static,
        today=date(2026, 11, 23),
    )
    private = app.rsa
    assert private is not None
    assert icc.modulus == SigningKey.from_pem(private.pem).public.modulus
    assert app.afl()  # the records imply an AFL with at least one entry


def test_repr_masks_pan_and_keys() -> None:
    profile = load_profile(FIXTURES / "cards" / "visa-card.json")
    text = repr(profile)
    app = profile.applications[0]
    assert app.pan not in text
    assert app.keys.ac.hex() not in text.lower()
    assert "476173******0010" in text


def _mutated(change: Any) -> dict[str, Any]:
    raw = json.loads((FIXTURES / "cards" / "visa-card.json").read_text())
    out = copy.deepcopy(raw)
    change(out)
    return out


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        (lambda d: d.pop("schema"), "schema", "missing"),
        (lambda d: d.update(form="watch"), "form", "card' or 'phone"),
        (lambda d: d["applications"][0].update(aid="A0Z"), "applications[0].aid", "hex"),
        (lambda d: d["applications"][0].update(cvn=17), "applications[0].cvn", "CVN 17"),
        (lambda d: d["applications"][0]["keys"].update(ac="00" * 15),
         "applications[0].keys.ac", "15 bytes"),
        (lambda d: d["applications"][0].update(pan="4761-7390"), "applications[0].pan", "digits"),
        (lambda d: d["applications"][0]["records"][0]["tags"].append("9F99"),
         "applications[0].records[0].tags", "no value"),
        (lambda d: d["applications"][0]["records"].append(
            {"sfi": 2, "record": 1, "tags": ["5A"]}), "applications[0].records[4]", "twice"),
        (lambda d: d.update(faults={"corrupt": {"A8": "melt"}}), "faults.corrupt.A8", "mode"),
        (lambda d: d.update(faults={"delay_ms": -1}), "faults.delay_ms", ">= 0"),
    ],
)  # fmt: skip
def test_bad_profiles_say_where(change: Any, where: str, message: str) -> None:
    with pytest.raises(ProfileError) as err:
        parse_profile(_mutated(change))
    assert err.value.path == where
    assert message in str(err.value)


def test_unreadable_files_are_profile_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileError, match="not JSON: line 1"):
        load_profile(bad)
