"""The root of every error the card package raises.

Each module keeps its errors beside the code that raises them, all under
:class:`CardError`:

- :class:`card.iso7816.StatusWordError`: a command is answered with a status word
  alone (ISO/IEC 7816-4 §5.1.3); the dispatcher turns it into the R-APDU;
- :class:`card.transport.CardRemoved`: the card left the field instead of answering
  (the terminal matches it by its name, without importing card);
- :class:`card.vpcd.ReaderBusyError` (also a :class:`ConnectionError`): another card
  holds the vpcd reader;
- :class:`card.scripted.ScriptError` (also a :class:`ValueError`): a scripted card
  profile is malformed; :class:`card.scripted.CardCollision`: two cards in the field
  (the terminal matches its ``card_collision`` attribute);
- :class:`card.state.StateError` (also a :class:`ValueError`): a counters file cannot be
  read;
- ``card.nfc._SessionEndedError``: internal control flow, an ISO-DEP session is over.

A caller that must not crash on the card's failures catches this one class.
"""

from __future__ import annotations

__all__ = ["CardError"]


class CardError(Exception):
    """Base of every error of the card package."""
