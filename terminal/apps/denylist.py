"""The transit gate's deny list: card references the back office refuses, offline.

The gate decides offline that a card's reference is not on the deny list, in under
5 us per check with 10 million entries (bench/test_bench_gate.py), and picks up the back
office's changes (``GET /v1/deny-list?since=N`` of the gate protocol, backoffice/
service.py: ``{"version", "full", "add", "remove"}``) within the poll interval. A gate
restarted without network still denies: the list lives on disk.

Layout (no third-party code, so it runs on any gate):

- **base**: the references as 16 raw bytes each, sorted, in one ``bytes`` object,
  with a bucket index: ``index[b]`` is the byte offset of the first key whose top
  ``bits`` bits are ``b`` or more (an ``array('I')`` of ``2**bits + 1`` entries,
  ``bits`` chosen for about eight keys per bucket; up to 268 million keys). A check
  takes the bucket of the key (one ``struct.unpack_from`` and a shift), then
  ``bytes.find`` over that bucket's few keys (C ``memmem``), a match counting only
  on a 16-byte boundary. Memory: 16 bytes per entry plus
  ``4 * 2**bits`` (about 0.5 byte per entry): 10 million entries take 168 MB. The
  references are HMAC outputs (:func:`emvwire.cardref.card_reference`), so
  buckets fill evenly.
- **overlay**: changes since the base (``dict`` key -> on the list or not), checked
  first. When it outgrows ``max(4096, n/64)`` entries it is merged into a new base,
  bucket by bucket (unchanged buckets are copied as slices).

On disk (``directory``): ``denylist.bin`` (header ``TSDL2``, version, count, bits;
index; keys), replaced atomically (write, ``fsync``, ``rename``, ``fsync`` of the
folder); and ``denylist.log``, the deltas applied since, one JSON line each, appended
and ``fsync``'d before they take effect. Opening replays the log onto the base; a torn
last line (a power cut mid-write, never applied) is cut off.

Thread safety: one writer (the poller thread calls :meth:`DenyList.apply`), any number
of readers; a reader sees the old or the new state, never a half-applied one (the
state is one immutable tuple swapped by reference).
"""

from __future__ import annotations

import bisect
import itertools
import json
import operator
import os
import struct
import threading
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any, Final

from terminal.apps.errors import AppError
from terminal.apps.journal import fsync_dir

__all__ = ["DenyList", "DenyListError", "parse_reference"]

BASE_FILE: Final = "denylist.bin"
LOG_FILE: Final = "denylist.log"
_MAGIC: Final = b"TSDL2\x00\x00\x00"
_HEADER: Final = struct.Struct("<8sQQI4x")  # magic, version, count, bits
_U32: Final = struct.Struct(">I").unpack_from
KEY_SIZE: Final = 16
#: Fewest bucket bits (16 buckets) and most (64 Mi buckets, 256 MB of index).
_MIN_BITS, _MAX_BITS = 4, 26
#: Overlay entries that trigger a merge into the base: max(this, entries / 64).
MERGE_AT: Final = 4096


class DenyListError(AppError, ValueError):
    """A malformed reference or delta, or a deny-list file this module did not write."""


def parse_reference(ref: object) -> bytes:
    """A card reference (32 hex digits, :func:`emvwire.cardref.card_reference`) as its
    16 bytes."""
    if not isinstance(ref, str) or len(ref) != 2 * KEY_SIZE:
        raise DenyListError(f"a card reference is 32 hex digits, not {ref!r:.40}")
    try:
        key = bytes.fromhex(ref)
    except ValueError:
        key = b""
    if len(key) != KEY_SIZE:  # fromhex skips blanks: "ab cd..." is not a reference
        raise DenyListError(f"a card reference is 32 hex digits, not {ref!r:.40}")
    return key


def _bits_for(count: int) -> int:
    return max(_MIN_BITS, min(_MAX_BITS, (count // 8).bit_length()))


def _index(keys: list[bytes], bits: int) -> array[int]:
    """``index[b]`` = 16 x the keys (sorted) whose top ``bits`` bits are below ``b``:
    the byte offset of bucket ``b`` in the joined keys."""
    shift = 32 - bits
    index = array("I", [0])
    n, pos = len(keys), 0
    for bucket in range(1, (1 << bits) + 1):
        if bucket == 1 << bits:
            pos = n
        else:
            bound = (bucket << shift).to_bytes(4, "big")
            near = min(n, pos + 64)
            pos = bisect.bisect_left(keys, bound, pos, near)
            if pos == near and pos < n and keys[pos] < bound:
                pos = bisect.bisect_left(keys, bound, pos)
        index.append(pos * KEY_SIZE)
    return index


@dataclass(frozen=True, slots=True)
class _Base:
    keys: bytes  # sorted 16-byte keys
    index: array[int]  # byte offsets of the buckets (module docstring)
    bits: int
    version: int
    shift: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shift", 32 - self.bits)

    @property
    def count(self) -> int:
        return len(self.keys) // KEY_SIZE

    @classmethod
    def build(cls, keys: Iterable[bytes], version: int) -> _Base:
        ordered = sorted(keys)
        if any(map(operator.eq, ordered, itertools.islice(ordered, 1, None))):
            ordered = [key for key, _ in itertools.groupby(ordered)]
        bits = _bits_for(len(ordered))
        return cls(b"".join(ordered), _index(ordered, bits), bits, version)

    def bucket(self, key: bytes) -> int:
        return int(_U32(key)[0]) >> self.shift

    def contains(self, key: bytes) -> bool:
        """Whether ``key`` is a key: its bucket by the top bits (one ``unpack_from``),
        then ``find`` over the bucket's bytes; a match counts on a key boundary only."""
        b = _U32(key)[0] >> self.shift
        lo = self.index[b]
        hi = self.index[b + 1]
        pos = self.keys.find(key, lo, hi)
        if pos < 0:
            return False
        while (pos - lo) % KEY_SIZE:  # straddling two keys: look further
            pos = self.keys.find(key, pos + 1, hi)
            if pos < 0:
                return False
        return True

    def merged(self, overlay: Mapping[bytes, bool], version: int) -> _Base:
        """A new base with ``overlay`` applied (module docstring)."""
        changes = sorted(overlay.items())
        keys, index = self.keys, self.index
        count = self.count
        if _bits_for(count + sum(1 for _, on in changes if on)) > self.bits + 1:
            # grown a lot: a fresh index of the right size
            current = {keys[i : i + KEY_SIZE] for i in range(0, len(keys), KEY_SIZE)}
            for key, on in changes:
                (current.add if on else current.discard)(key)
            return _Base.build(current, version)
        counts = array("I", (index[b + 1] - index[b] for b in range(len(index) - 1)))
        pieces: list[bytes] = []
        cursor = 0  # byte offset up to which the base has been copied
        i = 0
        while i < len(changes):
            b = self.bucket(changes[i][0])
            lo, hi = index[b], index[b + 1]
            pieces.append(keys[cursor:lo])
            members = {keys[j : j + KEY_SIZE] for j in range(lo, hi, KEY_SIZE)}
            while i < len(changes) and self.bucket(changes[i][0]) == b:
                key, on = changes[i]
                (members.add if on else members.discard)(key)
                i += 1
            pieces.append(b"".join(sorted(members)))
            counts[b] = len(members) * KEY_SIZE
            cursor = hi
        pieces.append(keys[cursor:])
        new_index = array("I", accumulate(counts, initial=0))
        return _Base(b"".join(pieces), new_index, self.bits, version)

    def to_file(self, path: Path, *, durable: bool = True) -> None:
        temporary = path.with_suffix(".tmp")
        with open(temporary, "wb") as handle:
            handle.write(_HEADER.pack(_MAGIC, self.version, self.count, self.bits))
            handle.write(self.index.tobytes())
            handle.write(self.keys)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
        if durable:
            fsync_dir(path.parent)

    @classmethod
    def from_file(cls, path: Path) -> _Base:
        data = path.read_bytes()
        if len(data) < _HEADER.size:
            raise DenyListError(f"{path} is not a deny list (too short)")
        magic, version, count, bits = _HEADER.unpack_from(data)
        index_size = 4 * ((1 << bits) + 1) if _MIN_BITS <= bits <= _MAX_BITS else -1
        if magic != _MAGIC or len(data) != _HEADER.size + index_size + KEY_SIZE * count:
            raise DenyListError(f"{path} is not a deny list this gate wrote")
        index = array("I")
        index.frombytes(data[_HEADER.size : _HEADER.size + index_size])
        keys = data[_HEADER.size + index_size :]
        if index[0] != 0 or index[-1] != KEY_SIZE * count:
            raise DenyListError(f"{path}: the bucket index does not match its keys")
        return cls(keys, index, bits, version)


@dataclass(frozen=True, slots=True)
class _State:
    base: _Base
    overlay: dict[bytes, bool]  # never mutated once published
    version: int


class DenyList:
    """The deny list kept in ``directory`` (``None``: in memory only, for tests and
    benchmarks); see the module docstring. ``ref in deny_list`` checks a reference
    (32 hex digits or 16 bytes)."""

    def __init__(self, directory: Path | str | None = None, *, durable: bool = True) -> None:
        self.directory = None if directory is None else Path(directory)
        self.durable = durable
        self._write_lock = threading.Lock()
        base = _Base.build((), 0)
        overlay: dict[bytes, bool] = {}
        version = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / BASE_FILE
            if path.exists():
                base = _Base.from_file(path)
            version = base.version
            for delta in self._read_log():
                if delta["version"] <= version:
                    continue  # already in the base (a crash between base and log)
                if delta.get("full"):
                    base = _Base.build(map(parse_reference, delta["add"]), delta["version"])
                    overlay = {}
                else:
                    overlay = self._overlaid(base, overlay, delta)
                version = delta["version"]
        self._state = _State(base, overlay, version)

    def __repr__(self) -> str:
        state = self._state
        return f"DenyList({len(self)} references, version {state.version})"

    # -- reading -----------------------------------------------------------------------

    def __contains__(self, ref: object) -> bool:
        """Whether the reference is on the list (the gate's offline check)."""
        key = ref if type(ref) is bytes and len(ref) == KEY_SIZE else parse_reference(ref)
        state = self._state
        on = state.overlay.get(key)
        if on is not None:
            return on
        return state.base.contains(key)

    def __len__(self) -> int:
        state = self._state
        count = state.base.count
        for key, on in state.overlay.items():
            count += int(on) - int(state.base.contains(key))
        return count

    @property
    def version(self) -> int:
        """The back office's deny-list version applied last (0: none yet)."""
        return self._state.version

    def memory_bytes(self) -> int:
        """Bytes the list holds: keys, bucket index and overlay (dict and its keys)."""
        state = self._state
        overlay = len(state.overlay) * (33 + KEY_SIZE + 8 * 3) if state.overlay else 0
        return len(state.base.keys) + state.base.index.itemsize * len(state.base.index) + overlay

    # -- writing -----------------------------------------------------------------------

    def replace(self, keys: Iterable[bytes], version: int) -> None:
        """Replace the whole list with ``keys`` (raw 16-byte references) at ``version``,
        durably: what a full answer of the back office does, without the hex."""
        keys = list(keys)
        if any(len(key) != KEY_SIZE for key in keys):
            raise DenyListError("a card reference is 16 bytes")
        base = _Base.build(keys, version)
        with self._write_lock:
            if self.directory is not None:
                base.to_file(self.directory / BASE_FILE, durable=self.durable)
                self._reset_log()
            self._state = _State(base, {}, version)

    @staticmethod
    def _check(delta: Mapping[str, Any]) -> dict[str, Any]:
        version = delta.get("version")
        add, remove = delta.get("add", []), delta.get("remove", [])
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise DenyListError(f"a deny-list version is an integer >= 0, not {version!r:.40}")
        if not isinstance(add, list) or not isinstance(remove, list):
            raise DenyListError("a deny-list delta has lists 'add' and 'remove'")
        for ref in (*add, *remove):
            parse_reference(ref)
        return {"version": version, "full": bool(delta.get("full")), "add": add, "remove": remove}

    @staticmethod
    def _overlaid(
        base: _Base, overlay: dict[bytes, bool], delta: Mapping[str, Any]
    ) -> dict[bytes, bool]:
        new = dict(overlay)
        for ref in delta["remove"]:
            key = parse_reference(ref)
            if base.contains(key):
                new[key] = False
            else:
                new.pop(key, None)
        for ref in delta["add"]:
            key = parse_reference(ref)
            if base.contains(key):
                new.pop(key, None)
            else:
                new[key] = True
        return new

    def apply(self, delta: Mapping[str, Any]) -> bool:
        """Apply one answer of ``GET /v1/deny-list`` (module docstring): a full list
        replaces everything, else ``remove`` is applied, then ``add`` (a reference in
        both ends on the list: the safe side). Durable (on disk) before it takes effect.
        Returns whether anything changed; an answer of a version not newer than the
        list's is ignored. Raises :class:`DenyListError` for a malformed answer,
        changing nothing."""
        checked = self._check(delta)
        if checked["version"] <= self._state.version and not checked["full"]:
            return False
        if checked["full"]:
            self.replace(map(parse_reference, checked["add"]), checked["version"])
            return True
        with self._write_lock:
            state = self._state
            if self.directory is not None:
                self._append_log(checked)
            overlay = self._overlaid(state.base, state.overlay, checked)
            base = state.base
            if len(overlay) > max(MERGE_AT, base.count // 64):
                base = base.merged(overlay, checked["version"])
                overlay = {}
                if self.directory is not None:
                    base.to_file(self.directory / BASE_FILE, durable=self.durable)
                    self._reset_log()
            self._state = _State(base, overlay, checked["version"])
            return True

    # -- the delta log -----------------------------------------------------------------

    def _read_log(self) -> list[dict[str, Any]]:
        assert self.directory is not None
        path = self.directory / LOG_FILE
        if not path.exists():
            return []
        data = path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        deltas = []
        for number, line in enumerate(complete, start=1):
            try:
                deltas.append(self._check(json.loads(line)))
            except (ValueError, AttributeError):
                raise DenyListError(f"{path}: line {number} is not a deny-list delta") from None
        if tail:  # torn by a power cut: never applied
            with open(path, "r+b") as handle:
                handle.truncate(len(data) - len(tail))
                os.fsync(handle.fileno())
        return deltas

    def _append_log(self, delta: Mapping[str, Any]) -> None:
        assert self.directory is not None
        line = json.dumps(delta, separators=(",", ":")).encode() + b"\n"
        with open(self.directory / LOG_FILE, "ab") as handle:
            handle.write(line)
            handle.flush()
            if self.durable:
                os.fsync(handle.fileno())

    def _reset_log(self) -> None:
        assert self.directory is not None
        path = self.directory / LOG_FILE
        with open(path, "wb") as handle:
            if self.durable:
                os.fsync(handle.fileno())
