"""The error tree of the terminal's applications.

Every error an application raises for a state or a request it refuses is an
:class:`AppError`, itself a :class:`terminal.errors.TerminalError`: the journal
(:class:`~terminal.apps.journal.JournalError`), the deny list
(:class:`~terminal.apps.denylist.DenyListError`), the parking tariff
(:class:`~terminal.apps.parking.TariffError`), the till
(:class:`~terminal.apps.retail.RetailError`) and the gate's link to its back office
(:class:`~terminal.apps.uploader.BackOfficeLinkError`). Each is defined next to the
code that raises it. An issuer that does not answer is the host link's own
:class:`hostlink.HostUnreachableError`, whichever application asked.
"""

from __future__ import annotations

from terminal.errors import TerminalError

__all__ = ["AppError"]


class AppError(TerminalError):
    """Base of the errors of the terminal's applications (module docstring)."""
