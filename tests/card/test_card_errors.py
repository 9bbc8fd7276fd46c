"""The card package's error tree: every exception under :class:`card.errors.CardError`,
with the extra bases its callers catch (card/errors.py)."""

from __future__ import annotations

import pytest

from card import nfc
from card.errors import CardError
from card.iso7816 import StatusWordError
from card.scripted import CardCollision, ScriptError
from card.state import StateError
from card.transport import CardRemoved
from card.vpcd import ReaderBusyError


@pytest.mark.parametrize(
    ("error", "also"),
    [
        (StatusWordError, ()),
        (CardRemoved, ()),
        (ReaderBusyError, (ConnectionError,)),
        (ScriptError, (ValueError,)),
        (CardCollision, ()),
        (StateError, (ValueError,)),
        (nfc._SessionEndedError, ()),
    ],
)
def test_every_card_error_is_a_card_error(error: type[Exception], also: tuple[type, ...]) -> None:
    assert issubclass(error, CardError)
    for base in also:
        assert issubclass(error, base)


def test_the_terminal_recognises_a_removal_and_a_collision_without_importing_card() -> None:
    # terminal/readers/emulated.py matches the class name CardRemoved; the entry point
    # matches the card_collision attribute (card, terminal never import each other)
    assert any(cls.__name__ == "CardRemoved" for cls in CardRemoved.__mro__)
    assert CardCollision("two cards").card_collision is True
