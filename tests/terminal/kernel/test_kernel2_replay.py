"""Kernel 2 against the public Mastercard transcripts (fixtures/transcripts/README.md).

Each transcript is replayed command by command: the terminal (entry point and kernel
2) must send exactly the recorded C-APDUs (SELECTs, GPO with its PDOL data, READ
RECORDs, GENERATE AC with P1 and CDOL1 data byte for byte) given the recorded
Unpredictable Number, date and amount, and a terminal configured as the recording
terminal was (country, currency, terminal type, capabilities, limits, action codes).
The transcripts leave out SFI 1 record 1 (the one that holds track data); the replay
answers it with an empty record, which takes part in no ODA. The outcome must be the
recorded one, with CDA verified under the transcripts' CA keys.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import pytest

from emvwire import tlv
from emvwire.oda import CaKeyStore
from terminal.kernel.config import TerminalConfig
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Cvm, OdaResult, TransactionResult
from tests.terminal.kernel.kernel2_helpers import (
    Transcript,
    TranscriptReader,
    fixed_rng,
    kernel2_config,
    tap,
    transcript_ca_keys,
)


@dataclass(frozen=True)
class Recording:
    """How the recording terminal was set up, and what came out."""

    terminal: dict[int, bytes]
    kernel: dict[int, bytes]
    outcome: Outcome
    tvr: str
    cvm: Cvm
    cvm_results: str
    cryptogram: str


H = bytes.fromhex
RECORDINGS = {
    # USD 90.00 in Belgium, attended offline-capable terminal: above the CVM limit, the
    # CVM list's online PIN; TAC online has "online PIN entered": ARQC with CDA.
    "mock-msc-online": Recording(
        {0x9F1A: H("0056"), 0x5F2A: H("0840"), 0x9F35: H("22")},
        {0xDF8118: H("60"), 0xDF8119: H("08")},
        Outcome.ONLINE_REQUEST,
        "0000040001",
        Cvm.ONLINE_PIN,
        "020300",
        "675B759BB5350F8C",
    ),
    # EUR 0.01 on an unattended offline-only terminal: no CVM, default action codes
    # unmatched: TC with CDA, approved offline.
    "mock-msc-offline": Recording(
        {0x9F1A: H("0056"), 0x9F35: H("26"), 0x9F40: H("6000F00001")},
        {0xDF8118: H("60"), 0xDF8119: H("08")},
        Outcome.APPROVED,
        "0000000001",
        Cvm.NO_CVM,
        "1F0302",
        "49C27A9F8E4BF538",
    ),
    # EUR 0.10 and a card without CVM support: 9F33 is 00 00 08 in the PDOL data (byte
    # 2 is set only once the CVM requirement is known) and 00 08 08 in CDOL1 (the "no
    # CVM required" capability); TC asked with CDA, the card answers a signed ARQC.
    "mock-msc-offline-2": Recording(
        {0x9F1A: H("0056"), 0x9F35: H("22")},
        {0xDF8118: H("60"), 0xDF8119: H("08")},
        Outcome.ONLINE_REQUEST,
        "0000000001",
        Cvm.NO_CVM,
        "3F0000",
        "AC123456789ABCDE",
    ),
}


@pytest.fixture(scope="module")
def ca_keys() -> CaKeyStore:
    return transcript_ca_keys()


def recording_config(rec: Recording, ca_keys: CaKeyStore) -> TerminalConfig:
    return kernel2_config(
        terminal=rec.terminal,
        kernel=rec.kernel,
        ca_keys=ca_keys,
        floor=10_000,
        cvm_required=5_000,
    )


def replay(
    name: str, ca_keys: CaKeyStore, **changes: object
) -> tuple[TranscriptReader, TransactionResult, Transcript]:
    t = Transcript.load(name)
    rec = replace(RECORDINGS[name], **changes)  # type: ignore[arg-type]
    request = tlv.flatten(tlv.decode(t.request))
    reader = TranscriptReader(t)
    result = tap(
        reader,
        int(request[0x9F02].hex()),
        config=recording_config(rec, ca_keys),
        when=t.when,
        rng=fixed_rng(t.randoms),
        currency=request[0x5F2A],
        type=request[0x9C][0],
    )
    return reader, result, t


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_replay_sends_the_recorded_commands_and_reaches_the_recorded_outcome(
    name: str, ca_keys: CaKeyStore
) -> None:
    rec = RECORDINGS[name]
    reader, result, t = replay(name, ca_keys)
    assert reader.mismatches == []
    assert reader.finished, f"stopped after {reader.position} of {len(t.apdus)} commands"
    # Only records missing from the published transcript were made up, none for ODA.
    assert all(c[1] == 0xB2 for c in reader.synthesised)
    assert result.outcome is rec.outcome, result.reasons
    assert result.oda is OdaResult.PASSED
    assert result.oda_method == "CDA"
    assert result.tvr.hex().upper() == rec.tvr
    assert result.cvm is rec.cvm
    assert result.data[0x9F34].hex().upper() == rec.cvm_results
    # The cryptogram comes out of the verified CDA signature (the card sent no 9F26).
    assert result.cryptogram.hex().upper() == rec.cryptogram
    assert result.apdu_count == len(t.apdus) + len(reader.synthesised)


def test_online_replay_field_55_carries_the_cryptogram_and_its_inputs(
    ca_keys: CaKeyStore,
) -> None:
    _, result, t = replay("mock-msc-online", ca_keys)
    blob = tlv.flatten(tlv.decode(result.authorisation_data))
    assert blob[0x9F26] == bytes.fromhex("675B759BB5350F8C")
    assert blob[0x9F27] == b"\x80"
    assert blob[0x9F36] == bytes.fromhex("0052")
    assert blob[0x9F37] == t.randoms
    assert blob[0x95] == bytes.fromhex("0000040001")
    assert blob[0x9A] == bytes.fromhex("200316")
    assert blob[0x9F02] == bytes.fromhex("000000009000")
    assert blob[0x5F2A] == bytes.fromhex("0840")
    assert blob[0x82] == bytes.fromhex("5980")
    assert blob[0x84] == bytes.fromhex("A0000000041010")
    assert blob[0x9F10] == bytes.fromhex("0110A040002C0000000000000000000007FF")
    assert 0x5A not in blob
    assert 0x57 not in blob
    assert result.masked_pan == "541333******1034"
    assert "5413330089601034" not in repr(result)


def test_replay_with_another_unpredictable_number_is_caught(ca_keys: CaKeyStore) -> None:
    """A UN other than the recorded one changes the GENERATE AC data: the scripted card
    notices, as it would notice a kernel that re-used or guessed the number."""
    t = Transcript.load("mock-msc-online")
    reader = TranscriptReader(t)
    result = tap(
        reader,
        9000,
        config=recording_config(RECORDINGS["mock-msc-online"], ca_keys),
        when=t.when,
        rng=fixed_rng(b"\x01\x02\x03\x04"),
        currency=bytes.fromhex("0840"),
    )
    assert [m[1][1] for m in reader.mismatches] == [0xAE]
    assert result.outcome is Outcome.END_APPLICATION
    assert "GENERATE AC answered 6F00" in result.reasons


def test_replay_without_the_ca_key_asks_for_no_cda_and_goes_online(
    ca_keys: CaKeyStore,
) -> None:
    """Without the CA key CDA has failed before GENERATE AC (TVR byte 1 bit 3): the
    online action code sends it online, without asking the card for a signature."""
    t = Transcript.load("mock-msc-offline")
    reader = TranscriptReader(t)
    config = recording_config(RECORDINGS["mock-msc-offline"], CaKeyStore())
    result = tap(
        reader,
        1,
        config=replace(config, terminal_data={**config.terminal_data, 0x9F35: b"\x22"}),
        when=t.when,
        rng=fixed_rng(t.randoms),
        currency=bytes.fromhex("0978"),
    )
    gen_ac = reader.mismatches[-1][1]
    assert gen_ac[1] == 0xAE
    assert gen_ac[2] == 0x80
    assert result.tvr[0] & 0x04  # CDA failed
    assert any("no CA public key A000000004/F3" in r for r in result.reasons)


def test_replay_after_the_card_expired_asks_for_an_aac(ca_keys: CaKeyStore) -> None:
    """On a day after the card's expiry (5F24 2020-12-31) processing restrictions set
    "expired application", which the default action codes of this offline-only
    terminal hold: the kernel asks for an AAC, without CDA, where the recording asked
    for a TC."""
    t = Transcript.load("mock-msc-offline")
    reader = TranscriptReader(t)
    result = tap(
        reader,
        1,
        config=recording_config(RECORDINGS["mock-msc-offline"], ca_keys),
        when=datetime(2021, 1, 2, 0, 0, 0),
        rng=fixed_rng(t.randoms),
        currency=bytes.fromhex("0978"),
    )
    assert result.tvr.hex().upper() == "0040000001"
    [(_, gen_ac, recorded)] = reader.mismatches
    assert recorded is not None
    assert recorded[2] == 0x50
    assert gen_ac[:4] == bytes.fromhex("80AE0000")  # AAC, no CDA
    assert "asked for AAC: default action codes (offline-only terminal)" in result.reasons
