"""Coverage-guided fuzz target for emvwire's decoders (atheris / libFuzzer).

Run for a set time (seconds) with::

    .venv/bin/python fuzz/fuzz_emvwire.py -max_total_time=60 fuzz/corpus

Every decoder that takes bytes from a card or a terminal is fed the input; the only
exceptions allowed out are emvwire's own (``EmvWireError`` and subclasses). Anything
else is a crash that libFuzzer reports with the input that caused it.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from emvwire import tlv
    from emvwire.errors import EmvWireError


def one_input(data: bytes) -> None:
    """Decode ``data`` as BER-TLV and re-encode what decoded."""
    try:
        objects = tlv.decode(data)
    except EmvWireError:
        return
    for obj in objects:
        again = tlv.decode(obj.encode())
        if again != [obj]:
            raise AssertionError(f"re-encoding changed {obj!r}")


def main() -> None:
    """Entry point: libFuzzer options come from the command line."""
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
