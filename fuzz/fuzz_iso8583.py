"""Coverage-guided fuzz target for ISO 8583 decoding (emvwire.iso8583 over
pyiso8583; atheris / libFuzzer).

Run for a set time (seconds) with ``scripts/fuzz SECONDS`` (after the emvwire
target), or directly::

    .venv/bin/python fuzz/fuzz_iso8583.py -max_total_time=60 CORPUS_DIR

The input is one message without its length header, as the issuer's listener hands
it to :func:`emvwire.iso8583.decode`. What decodes must encode and decode back to the
same message, its repr must not show a PAN of field 2 in clear, and the contract's
readings of it (the authorisation request, a decision, field 90) run on it. The only
exceptions allowed out are emvwire's own (``EmvWireError`` and subclasses, which the
listener answers with a format error); anything else is a crash that libFuzzer
reports with the input that caused it.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    import iso8583 as _pyiso8583  # noqa: F401 - instrumented for coverage

    from emvwire import iso8583
    from emvwire.errors import EmvWireError


def _readings(message: iso8583.Message) -> None:
    """The contract's readings of a decoded message (each may refuse it)."""
    for reading in (iso8583.authorisation_of, iso8583.decision_of):
        with contextlib.suppress(EmvWireError):
            reading(message)
    if 90 in message:
        with contextlib.suppress(EmvWireError):
            iso8583.original_of(message.text(90))


def one_input(data: bytes) -> None:
    """Decode ``data``; check the round trip and the masking of what decoded."""
    iso8583.salvage(data)
    try:
        message = iso8583.decode(data)
    except EmvWireError:
        return
    again = iso8583.decode(iso8583.encode_message(message))
    if again != message:
        raise AssertionError("encoding changed a decoded message")
    pan = message.fields.get(2)
    if isinstance(pan, str) and len(pan) >= 12 and pan in repr(message):
        raise AssertionError("the repr shows field 2 in clear")
    _readings(message)
    if iso8583.response_mti(message.mti) is not None:
        iso8583.encode_message(iso8583.answer_to(message, iso8583.FORMAT_ERROR))


def main() -> None:
    """Entry point: libFuzzer options come from the command line."""
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
