"""Per-transaction wire work outside TLV: DOL fill, APDU coding, masking, dictionary, dump.

Inputs are those of the public Visa online transcript (PDOL of 9 entries, 33 bytes;
the GPO response template 77). No pyemv counterpart exists for these functions.
"""

from __future__ import annotations

from typing import Any

from emvwire import apdu, dol
from emvwire.dictionary import describe
from emvwire.dump import dump
from emvwire.mask import mask_pan, mask_track2, scrub

PDOL = bytes.fromhex("9F66049F02069F03069F1A0295055F2A029A039C019F3704")
SOURCE = {
    0x9F66: bytes.fromhex("24C04000"),
    0x9F02: bytes.fromhex("000000009000"),
    0x9F1A: bytes.fromhex("0840"),
    0x5F2A: bytes.fromhex("0840"),
    0x9A: bytes.fromhex("200316"),
    0x9C: b"\x00",
    0x9F37: bytes.fromhex("ABABABAB"),
}
GPO_CMD = bytes.fromhex(
    "80A8000023832124C0400000000000900000000000000008400000000000084020031600ABABABAB00"
)
GPO_RESP = bytes.fromhex(
    "7757820220005F34010157114761739001010010D221220111438444895F201656495341204352454449"
    "542F43415244484F4C4445529F100706010A03A000009F260848325309BE82CBA29F2701809F36020077"
    "9F6C029000"
)


def test_dol_build_visa_pdol(benchmark: Any) -> None:
    data = benchmark(dol.build, PDOL, SOURCE)
    assert len(data) == 33


def test_dol_split_visa_pdol(benchmark: Any) -> None:
    data = dol.build(PDOL, SOURCE)
    parts = benchmark(dol.split, PDOL, data)
    assert parts[0x9F37] == SOURCE[0x9F37]


def test_capdu_encode_gpo(benchmark: Any) -> None:
    command = apdu.get_processing_options(dol.build(PDOL, SOURCE))
    assert benchmark(command.encode) == GPO_CMD


def test_capdu_decode_gpo(benchmark: Any) -> None:
    assert benchmark(apdu.CApdu.decode, GPO_CMD).ins == 0xA8


def test_mask_pan(benchmark: Any) -> None:
    assert benchmark(mask_pan, "4761739001010010") == "476173******0010"


def test_mask_track2(benchmark: Any) -> None:
    value = bytes.fromhex("4761739001010010D22122011143844489")
    assert benchmark(mask_track2, value).startswith("476173******0010D")


def test_scrub_log_line(benchmark: Any) -> None:
    line = "GPO ok pan=4761739001010010 atc=0077 arqc=48325309BE82CBA2 amount=000000009000"
    assert "739001" not in benchmark(scrub, line)


def test_describe(benchmark: Any) -> None:
    assert benchmark(describe, 0x9F66, 3) is not None


def test_dump_gpo_response(benchmark: Any) -> None:
    assert "Track 2" in benchmark(dump, GPO_RESP)
