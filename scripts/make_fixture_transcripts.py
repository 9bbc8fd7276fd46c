"""Write tapstack's own transcripts of fixtures/transcripts/ (``tapstack-*.json``).

Run: .venv/bin/python scripts/make_fixture_transcripts.py

Each is one full tap of a fixture card (fixtures/cards) through the built-in terminal
configuration, in an emulated reader, with a fixed unpredictable number and date, in
the format of the public mock transcripts beside them (``apdus`` as ``cmd``/``resp``
hex pairs, ``randoms``, ``date``, ``time``, ``transaction-req``), so that the replay
tests can hold a kernel to the exact commands it sent. The cards' own randomness (the
ICC dynamic number of a signature) is whatever they drew: it is in the answers.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from card.emv import EmvCard
from emvwire.profile import load_profile
from emvwire.tlv import encode
from terminal.kernel.config import default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.transaction import Transaction
from terminal.readers.emulated import EmulatedReader

ROOT = Path(__file__).resolve().parents[1]
UN = bytes.fromhex("ABABABAB")
WHEN = datetime(2026, 3, 1, 12, 30, 0)

#: file -> (fixture card, amount in minor units, what the transcript shows)
TRANSCRIPTS = {
    "tapstack-amex-online.json": (
        "amex-card",
        1000,
        "kernel 4 online: PPSE, SELECT, GPO (9F35, 9F6E), 4 READ RECORDs, GENERATE AC "
        "P1 90 (ARQC with CDA)",
    ),
    "tapstack-unionpay-online.json": (
        "unionpay-card",
        1000,
        "kernel 7 online: PPSE, SELECT, GPO with the ARQC (TDES, CVN 01)",
    ),
    "tapstack-unionpay-phone-cdcvm.json": (
        "unionpay-phone",
        6000,
        "kernel 7, a phone with consumer device CVM above the CVM required limit: PPSE, "
        "SELECT, GPO with the ARQC (SM4, CVN 04) and the SDAD, 5 READ RECORDs for fDDA "
        "over the signed CTQ",
    ),
}


class _Recorder:
    """The card in the field, every command and answer kept."""

    def __init__(self, card: EmvCard) -> None:
        self.card = card
        self.atr = card.atr
        self.log: list[dict[str, str]] = []

    def power_on(self) -> None:
        self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def process(self, command: bytes) -> bytes:
        answer = self.card.process(command)
        self.log.append({"cmd": command.hex().upper(), "resp": answer.hex().upper()})
        return answer


def record(card_name: str, amount: int, note: str) -> dict[str, object]:
    """One tap of ``card_name`` for ``amount``: the transcript document."""
    card = _Recorder(EmvCard(load_profile(ROOT / "fixtures" / "cards" / f"{card_name}.json")))
    entry = EntryPoint(default_config(), rng=lambda n: UN[:n], clock=lambda: WHEN)
    result = entry.run(EmulatedReader(card), Transaction(amount))
    request = (
        encode(0x9F02, bytes.fromhex(f"{amount:012d}"))
        + encode(0x5F2A, default_config().currency)
        + encode(0x9C, b"\x00")
    )
    return {
        "note": f"tapstack transcript: {note}; outcome {result.outcome.label}",
        "card": f"fixtures/cards/{card_name}.json",
        "randoms": UN.hex().upper(),
        "date": WHEN.strftime("%y%m%d"),
        "time": WHEN.strftime("%H%M%S"),
        "transaction-req": request.hex().upper(),
        "apdus": card.log,
    }


def main() -> None:
    """Write every transcript."""
    for name, (card_name, amount, note) in TRANSCRIPTS.items():
        doc = record(card_name, amount, note)
        (ROOT / "fixtures" / "transcripts" / name).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"{name}: {len(doc['apdus'])} APDUs")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
