"""The error tree of the transit back office.

Everything the back office raises for a request, a configuration or a home it refuses
is a :class:`BackOfficeError`: the fare rules (:class:`FareError`), the home and its
database (:class:`StoreError`) and the taps gates upload (:class:`TapError`, and
:class:`ForeignTapError` for a tap of another gate). An issuer that does not answer is
the host link's own :class:`hostlink.HostUnreachableError`. Messages name the field or
the file, never a PAN or a track 2.
"""

from __future__ import annotations

__all__ = ["BackOfficeError", "FareError", "ForeignTapError", "StoreError", "TapError"]


class BackOfficeError(Exception):
    """Base of every error of the back office."""


class FareError(BackOfficeError, ValueError):
    """A fare configuration that is malformed; the message names the field."""


class StoreError(BackOfficeError):
    """A home that is missing, incomplete or not a back office's."""


class TapError(BackOfficeError, ValueError):
    """A malformed tap (the message names the tap and field)."""


class ForeignTapError(BackOfficeError, PermissionError):
    """A tap of another gate than the one that uploads it (HTTP 403)."""
