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

Where a card profile's counters live by default (:func:`default_state_path`): in the
state folder (:func:`state_dir`), never beside the profile, so that running a card
from a source tree leaves that tree as it was. The folder is ``$TAPSTACK_STATE_DIR``,
else ``$XDG_STATE_HOME/tapstack/cards`` (XDG Base Directory Specification 0.8, "user
state"), else ``~/.local/state/tapstack/cards``; it is made on first save, private to
its user. The file is named from the profile: its file name and a short hash of its
absolute path (two profiles of one name in two folders are two cards), nothing from
what the profile holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from card.errors import CardError
from emvwire.profile import Application, Counters

__all__ = [
    "STATE_DIR_ENV",
    "STATE_SCHEMA",
    "AppState",
    "CardState",
    "StateError",
    "default_state_path",
    "state_dir",
]

STATE_SCHEMA = "tapstack.card-state/1"

#: The environment variable naming the state folder (module docstring).
STATE_DIR_ENV: Final = "TAPSTACK_STATE_DIR"

#: The ATC is two bytes (Book 3 Annex A, 9F36): at this value the application is
#: spent and refuses further transactions.
ATC_MAX = 0xFFFF


class StateError(CardError, ValueError):
    """A state file cannot be read or is malformed."""


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder of the cards' counters files (module docstring).

    ``environ`` defaults to :data:`os.environ`. An ``XDG_STATE_HOME`` that is not an
    absolute path is ignored, as the XDG Base Directory Specification says.
    """
    env = os.environ if environ is None else environ
    chosen = env.get(STATE_DIR_ENV, "")
    if chosen:
        return Path(chosen).expanduser()
    xdg = env.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "tapstack" / "cards"


def default_state_path(profile_path: str | Path, folder: str | Path | None = None) -> Path:
    """The counters file of the card of ``profile_path``: ``NAME-HASH.state.json`` in
    ``folder`` (default :func:`state_dir`), HASH the first 12 hex digits of the SHA-256
    of the profile's absolute path."""
    profile = Path(profile_path).resolve()
    digest = hashlib.sha256(os.fsencode(profile)).hexdigest()[:12]
    where = Path(folder) if folder is not None else state_dir()
    return where / f"{profile.stem}-{digest}.state.json"


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
        self._folder_ready = False
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
        if not self._folder_ready:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._folder_ready = True
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
