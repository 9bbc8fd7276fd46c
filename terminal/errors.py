"""The root of every error the terminal package raises.

Each layer keeps a small tree under :class:`TerminalError`: the reader layer's
:class:`terminal.readers.base.ReaderError` (communication failures apart from protocol
failures), the kernel's configuration errors, and each application's own. A caller
that must not crash on the terminal's failures catches this one class.
"""

from __future__ import annotations

__all__ = ["TerminalError"]


class TerminalError(Exception):
    """Base of every error of the terminal package."""
