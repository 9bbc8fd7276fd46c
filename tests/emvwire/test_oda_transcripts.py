"""End to end ODA on recorded public transcripts (fixtures/transcripts, see its README).

Each transcript is replayed from the terminal's side: the CA key named by ``8F``, the
issuer and ICC certificates from the records, the static data to be authenticated
from the AFL's ODA records, then the card's signature checked with the data the
terminal actually sent (PDOL data of GET PROCESSING OPTIONS, CDOL1 data of GENERATE
AC, the recorded unpredictable number and date).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from emvwire import tlv
from emvwire.errors import OdaError
from emvwire.oda import (
    CaKey,
    CaKeyStore,
    IccPublicKey,
    IssuerPublicKey,
    build_static_data,
    oda_records,
    parse_terminal_config,
    recover_icc_key,
    recover_issuer_key,
    verify_cda,
    verify_fdda,
    verify_sda,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TRANSCRIPTS = FIXTURES / "transcripts"


@dataclass(frozen=True)
class Transcript:
    """The parts of a recorded exchange that ODA needs."""

    today: date
    unpredictable_number: bytes
    request: dict[int, bytes]
    data: dict[int, bytes]
    records: dict[tuple[int, int], bytes]
    pdol_data: bytes
    cdol1_data: bytes | None
    gen_ac_response: bytes | None

    @property
    def rid(self) -> bytes:
        return self.data[0x4F][:5]

    def static_data(self) -> bytes:
        afl = oda_records(self.data[0x94])
        return build_static_data(
            [(sfi, self.records[(sfi, number)]) for sfi, number in afl],
            aip=self.data[0x82],
            sda_tag_list=self.data.get(0x9F4A),
        )


def load(name: str) -> Transcript:
    doc = json.loads((TRANSCRIPTS / f"{name}.json").read_text())
    yymmdd = doc["date"]
    today = date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    data: dict[int, bytes] = {}
    records: dict[tuple[int, int], bytes] = {}
    pdol_data = b""
    cdol1_data = gen_ac = None
    for apdu in doc["apdus"]:
        cmd = bytes.fromhex(apdu["cmd"])
        resp = bytes.fromhex(apdu["resp"])
        assert resp[-2:] == b"\x90\x00"
        body = resp[:-2]
        command_data = cmd[5 : 5 + cmd[4]] if len(cmd) > 5 else b""
        if cmd[1] == 0xB2:  # READ RECORD: P1 record, P2 SFI << 3 | 4 (Book 3 §6.5.11)
            records[(cmd[3] >> 3, cmd[2])] = body
        elif cmd[1] == 0xA8:  # GET PROCESSING OPTIONS: data is template 83
            pdol_data = tlv.decode_one(command_data, 0x83).value
        elif cmd[1] == 0xAE:  # GENERATE AC: data is the CDOL1-related data
            cdol1_data, gen_ac = command_data, body
        for tag, value in tlv.flatten(tlv.decode(body)).items():
            data.setdefault(tag, value)
    request = tlv.flatten(tlv.decode(bytes.fromhex(doc["transaction-req"])))
    return Transcript(
        today,
        bytes.fromhex(doc["randoms"]),
        request,
        data,
        records,
        pdol_data,
        cdol1_data,
        gen_ac,
    )


@pytest.fixture(scope="module")
def store() -> CaKeyStore:
    """CA keys as the terminal configurations give them.

    A000000003/92, A000000004/F3 and F8 come from cfg_default_terminal.json; FA from
    cfg_test_cert_override.json, because the default file's FA key is a different,
    1280-bit key (see test_default_config_fa_key_does_not_fit_mock_msc_online).
    """
    keys = CaKeyStore.from_terminal_config(
        (TRANSCRIPTS / "cfg_default_terminal.json").read_text(), skip_invalid=True
    )
    override, _ = parse_terminal_config(
        (TRANSCRIPTS / "cfg_test_cert_override.json").read_text(), skip_invalid=True
    )
    keys.add(next(k for k in override if k.label == "A000000004/FA"), replace=True)
    return keys


def chain(t: Transcript, ca: CaKey) -> tuple[IssuerPublicKey, IccPublicKey, bytes]:
    d = t.data
    issuer = recover_issuer_key(ca, d[0x90], d.get(0x92), d[0x9F32], d[0x5A], t.today)
    static = t.static_data()
    icc = recover_icc_key(issuer, d[0x9F46], d.get(0x9F48), d[0x9F47], d[0x5A], static, t.today)
    return issuer, icc, static


# name, CA index, issuer id, issuer expiry, N_I bits, N_IC bits, static data length, DAC
EXPECTED = {
    "mock-msc-online": (0xFA, "541333", date(2030, 12, 31), 896, 768, 16, "DAC0"),
    "mock-msc-offline": (0xF3, "54133390", date(2020, 12, 31), 1152, 1024, 190, "DAC0"),
    "mock-msc-offline-2": (0xF8, "541333", date(2049, 12, 31), 1008, 992, 253, None),
    "mock-visa-offline": (0x92, "476173", date(2019, 12, 31), 1152, 896, 20, None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_certificates_and_sda(store: CaKeyStore, name: str) -> None:
    index, identifier, expiry, issuer_bits, icc_bits, static_len, dac = EXPECTED[name]
    t = load(name)
    assert t.data[0x8F] == bytes((index,))
    issuer, icc, static = chain(t, store.get(t.rid, index))
    assert issuer.issuer_identifier == identifier
    assert issuer.expiry == expiry
    assert (len(issuer.modulus) * 8, issuer.exponent) == (issuer_bits, 3)
    assert (len(icc.modulus) * 8, icc.exponent) == (icc_bits, 3)
    assert len(static) == static_len
    if dac is None:
        assert 0x93 not in t.data
    else:
        assert verify_sda(issuer, t.data[0x93], static).hex().upper() == dac


# name, CID, Application Cryptogram, ICC Dynamic Number
CDA = {
    "mock-msc-online": (0x80, "675B759BB5350F8C", "B39C5522F9D77FAD"),
    "mock-msc-offline": (0x40, "49C27A9F8E4BF538", "AB803A04B0BCA313"),
    "mock-msc-offline-2": (0x80, "AC123456789ABCDE", "D0987654"),
}


@pytest.mark.parametrize("name", sorted(CDA))
def test_cda_of_the_generate_ac_response(store: CaKeyStore, name: str) -> None:
    cid, ac, dn = CDA[name]
    t = load(name)
    assert t.cdol1_data is not None
    assert t.gen_ac_response is not None
    # The recorded unpredictable number is the one the terminal put in CDOL1 data.
    assert t.unpredictable_number in t.cdol1_data
    _, icc, _ = chain(t, store.get(t.rid, t.data[0x8F][0]))
    result = verify_cda(
        icc,
        t.gen_ac_response,
        unpredictable_number=t.unpredictable_number,
        pdol_data=t.pdol_data,
        cdol1_data=t.cdol1_data,
    )
    assert result.cid == cid == t.data[0x9F27][0]
    assert result.cryptogram.hex().upper() == ac
    assert result.icc_dynamic_number.hex().upper() == dn


def test_cda_rejects_a_changed_amount_or_number(store: CaKeyStore) -> None:
    t = load("mock-msc-online")
    assert t.cdol1_data is not None
    assert t.gen_ac_response is not None
    _, icc, _ = chain(t, store.get(t.rid, 0xFA))
    assert t.cdol1_data[:6] == bytes.fromhex("000000009000")  # 9F02, the first CDOL1 entry
    args = {
        "unpredictable_number": t.unpredictable_number,
        "pdol_data": t.pdol_data,
        "cdol1_data": t.cdol1_data,
    }
    with pytest.raises(OdaError, match=r"^transaction data hash code does not match$"):
        verify_cda(
            icc,
            t.gen_ac_response,
            **{**args, "cdol1_data": b"\x00" * 4 + b"\x99\x00" + t.cdol1_data[6:]},
        )
    with pytest.raises(OdaError, match=r"^signed dynamic application data hash does not match$"):
        verify_cda(icc, t.gen_ac_response, **{**args, "unpredictable_number": b"\xab\xab\xab\xac"})
    tampered = t.gen_ac_response.replace(bytes.fromhex("9F270180"), bytes.fromhex("9F270140"))
    with pytest.raises(OdaError, match=r"^CID in the signature does not match"):
        verify_cda(icc, tampered, **args)


def test_fdda_of_the_visa_gpo_response(store: CaKeyStore) -> None:
    t = load("mock-visa-offline")
    _, icc, _ = chain(t, store.get(t.rid, 0x92))
    # The terminal's PDOL data holds the same UN, amount and currency it signs for.
    assert (
        t.pdol_data
        == bytes.fromhex("24004000")
        + t.request[0x9F02]
        + t.request[0x5F2A]
        + t.unpredictable_number
    )
    result = verify_fdda(
        icc,
        t.data[0x9F4B],
        unpredictable_number=t.unpredictable_number,
        amount_authorised=t.request[0x9F02],
        currency_code=t.request[0x5F2A],
        card_auth_data=t.data[0x9F69],
    )
    # fDDA version 01; the card's dynamic number is its ATC.
    assert t.data[0x9F69][0] == 0x01
    assert result.icc_dynamic_number == t.data[0x9F36] == b"\x00\x15"
    with pytest.raises(OdaError, match=r"^signed dynamic application data hash does not match$"):
        verify_fdda(
            icc,
            t.data[0x9F4B],
            unpredictable_number=t.unpredictable_number,
            amount_authorised=bytes.fromhex("000000000201"),
            currency_code=t.request[0x5F2A],
            card_auth_data=t.data[0x9F69],
        )


def test_transcript_certificates_expire(store: CaKeyStore) -> None:
    t = load("mock-visa-offline")
    d = t.data
    ca = store.get(t.rid, 0x92)
    with pytest.raises(OdaError, match=r"^issuer certificate has expired$"):
        recover_issuer_key(ca, d[0x90], d.get(0x92), d[0x9F32], d[0x5A], date(2020, 1, 1))


def test_transcript_static_data_is_bound_to_the_icc_certificate(store: CaKeyStore) -> None:
    t = load("mock-msc-offline")
    d = t.data
    issuer, _, static = chain(t, store.get(t.rid, 0xF3))
    changed = static.replace(d[0x5F24], bytes.fromhex("301231"))
    with pytest.raises(OdaError, match=r"^ICC certificate hash does not match$"):
        recover_icc_key(issuer, d[0x9F46], d[0x9F48], d[0x9F47], d[0x5A], changed, t.today)
    with pytest.raises(OdaError, match=r"^signed static application data hash does not match$"):
        verify_sda(issuer, d[0x93], changed)


def test_default_config_fa_key_does_not_fit_mock_msc_online() -> None:
    keys, _ = parse_terminal_config(
        (TRANSCRIPTS / "cfg_default_terminal.json").read_text(), skip_invalid=True
    )
    fa = next(k for k in keys if k.label == "A000000004/FA")
    t = load("mock-msc-online")
    d = t.data
    with pytest.raises(OdaError, match="issuer certificate is 144 bytes, the key modulus is 160"):
        recover_issuer_key(fa, d[0x90], d.get(0x92), d[0x9F32], d[0x5A], t.today)


def test_fixture_store_matches_the_configurations(store: CaKeyStore) -> None:
    fixtures = CaKeyStore.load(FIXTURES / "ca" / "emv-test-keys.json")
    for key in fixtures:
        assert store.get(key.rid, key.index).modulus == key.modulus
