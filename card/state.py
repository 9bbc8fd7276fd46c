"""The card's non-volatile counters: what a real card keeps in EEPROM between taps.

Per application: the Application Transaction Counter (ATC, tag ``9F36``, EMV Book 3
Annex A; it never goes back on a genuine card), the ATC of the last online
transaction (``9F13``), the offline risk counters (consecutive offline transactions,
cumulative offline amount; EMV Book 3 §10.6 "velocity checking" done by the card) and
whether the application is blocked.

Without a path the state lives in memory, on the object, across power cycles. With a
path it is a JSON file (schema ``tapstack.card-state/1``) rewritten atomically after
every change: written to a temporary file in the same folder, flushed and fsynced,
renamed over the old file, and the folder fsynced, so a crash leaves either the old or
the new counters, never a torn file. The file holds no secret and no PAN: AIDs and
numbers only.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from card.errors import CardError
from emvwire.profile import Application, Counters

__all__ = ["STATE_SCHEMA", "AppState", "CardState", "StateError"]

STATE_SCHEMA = "tapstack.card-state/1"

#: The ATC is two bytes (Book 3 Annex A, 9F36): at this value the application is
#: spent and refuses further transactions.
ATC_MAX = 0xFFFF


class StateError(CardError, ValueError):
    """A state file cannot be read or is malformed."""


@dataclass(slots=True)
class AppState:
    """The mutable counters of one application."""

    atc: int = 0
    last_online_atc: int = 0
    offline_count: int = 0
    offline_amount: int = 0
    blocked: bool = False

    @classmethod
    def from_counters(cls, c: Counters) -> AppState:
        """The state at personalisation (the profile's ``counters``)."""
        return cls(c.atc, c.last_online_atc, c.offline_count, c.offline_amount)

    def as_counters(self) -> Counters:
        """A frozen snapshot."""
        return Counters(self.atc, self.last_online_atc, self.offline_count, self.offline_amount)

    def to_json(self) -> dict[str, Any]:
        return {
            "atc": self.atc,
            "last_online_atc": self.last_online_atc,
            "offline_count": self.offline_count,
            "offline_amount": self.offline_amount,
            "blocked": self.blocked,
        }


def _int_field(obj: Mapping[str, Any], key: str, where: str, hi: int) -> int:
    value = obj.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise StateError(f"{where}.{key}: expected an integer in 0..{hi}")
    return value


def _parse(obj: Any, known: Iterable[bytes]) -> dict[bytes, AppState]:
    if not isinstance(obj, dict) or obj.get("schema") != STATE_SCHEMA:
        raise StateError(f"not a {STATE_SCHEMA} document")
    apps = obj.get("applications")
    if not isinstance(apps, dict):
        raise StateError("applications: expected an object")
    wanted = set(known)
    out: dict[bytes, AppState] = {}
    for aid_hex, entry in apps.items():
        try:
            aid = bytes.fromhex(aid_hex)
        except (TypeError, ValueError):
            raise StateError(f"applications: {aid_hex!r} is not an AID in hex") from None
        if aid not in wanted:
            continue
        if not isinstance(entry, dict):
            raise StateError(f"applications.{aid_hex}: expected an object")
        blocked = entry.get("blocked", False)
        if not isinstance(blocked, bool):
            raise StateError(f"applications.{aid_hex}.blocked: expected true or false")
        where = f"applications.{aid_hex}"
        out[aid] = AppState(
            atc=_int_field(entry, "atc", where, ATC_MAX),
            last_online_atc=_int_field(entry, "last_online_atc", where, ATC_MAX),
            offline_count=_int_field(entry, "offline_count", where, 2**63),
            offline_amount=_int_field(entry, "offline_amount", where, 2**63),
            blocked=blocked,
        )
    return out


class CardState:
    """The counters of every application of one card, optionally backed by a file."""

    def __init__(self, applications: Iterable[Application], path: str | Path | None = None):
        apps = tuple(applications)
        self.path = Path(path) if path is not None else None
        self._apps: dict[bytes, AppState] = {
            a.aid: AppState.from_counters(a.counters) for a in apps
        }
        if self.path is not None and self.path.exists():
            self._apps.update(self._read())

    def __getitem__(self, aid: bytes) -> AppState:
        return self._apps[aid]

    def _read(self) -> dict[bytes, AppState]:
        assert self.path is not None
        try:
            text = self.path.read_text()
        except OSError as exc:
            raise StateError(f"cannot read card state: {exc.strerror}") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(f"card state is not JSON: line {exc.lineno}: {exc.msg}") from None
        return _parse(obj, self._apps)

    def reload(self) -> None:
        """Read the file again (another process may have used the card since)."""
        if self.path is not None and self.path.exists():
            self._apps.update(self._read())

    def to_json(self) -> dict[str, Any]:
        """The state as JSON-ready data."""
        return {
            "schema": STATE_SCHEMA,
            "applications": {aid.hex().upper(): s.to_json() for aid, s in self._apps.items()},
        }

    def save(self) -> None:
        """Persist the counters (atomic replace with fsync); nothing without a path."""
        if self.path is None:
            return
        text = json.dumps(self.to_json(), indent=2) + "\n"
        folder = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
