"""TLV decoding of a typical Visa GPO response: emvwire beside pyemv on the same bytes.

pyemv.tlv.decode(..., flatten=True) builds a flat tag -> value dict; the like-for-like
emvwire call is ``flatten(decode(...))``. ``decode`` alone builds the full tree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyemv
import pytest

from emvwire import tlv

TRANSCRIPT = Path(__file__).parents[1] / "fixtures" / "transcripts" / "mock-visa-online.json"


def _gpo_response() -> bytes:
    """The GPO answer (template 77) of the public Visa online transcript, without SW."""
    if TRANSCRIPT.exists():
        apdus = json.loads(TRANSCRIPT.read_text())["apdus"]
        for pair in apdus:
            cmd = bytes.fromhex(pair["cmd"].replace(" ", ""))
            if cmd[:2] == b"\x80\xa8":
                return bytes.fromhex(pair["resp"].replace(" ", ""))[:-2]
    pytest.skip(f"transcript {TRANSCRIPT} not present")


GPO = _gpo_response()


def test_emvwire_decode_tree(benchmark) -> None:
    result = benchmark(tlv.decode, GPO)
    assert result[0].tag == 0x77


def test_emvwire_decode_flat(benchmark) -> None:
    result = benchmark(lambda: tlv.flatten(tlv.decode(GPO)))
    assert 0x9F26 in result


def test_emvwire_decode_flat_one_pass(benchmark) -> None:
    result = benchmark(tlv.decode_flat, GPO)
    assert 0x9F26 in result


def test_pyemv_decode_flat(benchmark) -> None:
    result = benchmark(pyemv.tlv.decode, GPO, flatten=True)
    assert "9F26" in result
