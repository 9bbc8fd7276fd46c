"""The examples in emvwire.crypto's docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "emvwire.crypto.des",
    "emvwire.crypto.aes",
    "emvwire.crypto.mac",
    "emvwire.crypto.kdf",
    "emvwire.crypto.cryptogram",
    "emvwire.crypto.sm2",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
