"""Store and forward between a transit gate and its back office: the gate's side of
the gate protocol (the back office's side and the protocol itself: backoffice/service.py).

:class:`BackOfficeClient` speaks it over HTTPS (standard library ``http.client``, one
keep-alive connection; TLS as :mod:`emvwire.tls` sets it up: the back office's
certificate verified against its CA and host name, the gate's client certificate
presented; ``Authorization: Bearer <gate_id>:<key>`` on every request): ``POST
/v1/taps`` and ``GET /v1/deny-list?since=N``. Plain ``http://`` only for local
development (:data:`emvwire.tls.DEV_PLAIN_HTTP`).

:class:`Uploader` is a thread that sends the journal's pending records (those after
its upload cursor) in batches of at most 500, oldest first, and moves the cursor
(``Journal.acknowledge``, durable) only after a 200 that lists every tap of the batch
as accepted or duplicate. A gate that crashes between the 200 and the cursor sends
the batch again after its restart; the back office stores a tap id once and lists it
under ``duplicates``, so no tap is lost or counted twice. Failures (no network, 5xx,
a refused batch) are retried with exponential back-off and jitter (0.5 s doubling to
30 s); a 4xx other than 429 is reported, since it will not heal by itself, and still
retried so a fixed back office picks the taps up.

:class:`DenyListPoller` is a thread that asks for the deny-list changes since the
version the gate holds, every ``interval`` seconds (default 60: a gate picks up a new
entry within that interval), and applies them
(:meth:`terminal.apps.denylist.DenyList.apply`, durable first).
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from emvwire.tls import REUSE_WITHIN, ClientTls, KeptConnection
from terminal.apps.denylist import DenyList, DenyListError
from terminal.apps.errors import AppError
from terminal.apps.journal import Journal

__all__ = [
    "BATCH_LIMIT",
    "BackOfficeClient",
    "BackOfficeLinkError",
    "BackOfficeUnreachableError",
    "DenyListPoller",
    "Uploader",
]

log = logging.getLogger(__name__)

#: Most taps per ``POST /v1/taps`` (the protocol's limit).
BATCH_LIMIT: Final = 500
_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 30.0


class BackOfficeLinkError(AppError):
    """The gate's request to its back office failed: the back office answered with an
    error (``status``, ``code`` from its JSON), or did not answer
    (:class:`BackOfficeUnreachableError`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code
        super().__init__(f"back office answered {status} {code}: {message}")


class BackOfficeUnreachableError(BackOfficeLinkError):
    """No answer from the back office: connection refused or reset, time-out, not HTTP."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "unavailable", message)


class BackOfficeClient:
    """The back office at ``url`` (``https://HOST:PORT``) for gate ``gate_id``, over TLS
    as ``tls`` says (module docstring); :class:`ValueError` for a URL that is not https
    (unless ``tls.dev_plain_http``) or TLS files that do not load."""

    def __init__(
        self,
        url: str,
        gate_id: str,
        key: str,
        *,
        tls: ClientTls | None = None,
        timeout: float = 5.0,
        reuse_within: float = REUSE_WITHIN,
    ) -> None:
        parts, context = (tls or ClientTls()).for_url(url, "back office")
        self.url = url.rstrip("/")
        self._prefix = parts.path.rstrip("/")
        self._auth = f"Bearer {gate_id}:{key}"
        self.timeout = timeout
        self._link = KeptConnection(parts.hostname or "", parts.port, context,
                                    reuse_within=reuse_within)  # fmt: skip
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BackOfficeClient({self.url!r})"  # never the key

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._link.close()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One request; the JSON answer of a 200, else :class:`BackOfficeLinkError`."""
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        with self._lock:
            try:
                conn = self._link.connection(self.timeout)
                conn.request(method, self._prefix + path, body=payload, headers=headers)
                answer = conn.getresponse()
                status, data = answer.status, answer.read()
            except (OSError, http.client.HTTPException) as exc:
                self._link.close()
                raise BackOfficeUnreachableError(
                    f"{self.url}: {exc or type(exc).__name__}"
                ) from exc
        try:
            document = json.loads(data) if data else None
        except ValueError:
            document = None
        if status != 200:
            error = document.get("error", {}) if isinstance(document, dict) else {}
            error = error if isinstance(error, dict) else {}
            raise BackOfficeLinkError(
                status, str(error.get("code", "error")), str(error.get("message", data[:200]))
            )
        if document is None:
            raise BackOfficeLinkError(status, "not_json", "a 200 without a JSON body")
        return document

    def post_taps(self, taps: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
        """``POST /v1/taps``: ``{"accepted": [...], "duplicates": [...]}``."""
        answer = self.request("POST", "/v1/taps", {"taps": list(taps)})
        if not isinstance(answer, dict):
            raise BackOfficeLinkError(200, "bad_answer", "not a JSON object")
        accepted, duplicates = answer.get("accepted"), answer.get("duplicates", [])
        if not isinstance(accepted, list) or not isinstance(duplicates, list):
            raise BackOfficeLinkError(200, "bad_answer", "no 'accepted' and 'duplicates' lists")
        return {"accepted": [str(t) for t in accepted], "duplicates": [str(t) for t in duplicates]}

    def deny_list(self, since: int) -> dict[str, Any]:
        """``GET /v1/deny-list?since=N``: ``{"version", "full", "add", "remove"}``."""
        answer = self.request("GET", f"/v1/deny-list?since={int(since)}")
        if not isinstance(answer, dict):
            raise BackOfficeLinkError(200, "bad_answer", "not a JSON object")
        return answer


def _tap(record: Mapping[str, Any]) -> dict[str, Any]:
    """The TAP of a journal record (the journal's ``seq`` is not part of it)."""
    return {k: v for k, v in record.items() if k != "seq"}


class Uploader:
    """Uploads the journal's pending taps in a background thread (module docstring).

    ``on_acknowledged`` receives the records the back office now holds, after the
    cursor moved. ``status`` says how the last attempt went, for the gate's display.
    """

    def __init__(
        self,
        journal: Journal,
        client: BackOfficeClient,
        *,
        batch: int = BATCH_LIMIT,
        on_acknowledged: Callable[[list[dict[str, Any]]], None] | None = None,
        idle_poll: float = 5.0,
        backoff_max: float = _BACKOFF_MAX,
    ) -> None:
        if not 1 <= batch <= BATCH_LIMIT:
            raise ValueError(f"a batch is 1 to {BATCH_LIMIT} taps")
        self.journal = journal
        self.client = client
        self.batch = batch
        self.on_acknowledged = on_acknowledged
        self.idle_poll = idle_poll
        self.backoff_max = backoff_max
        self.status = "idle"
        self.failures = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def upload_once(self) -> int:
        """Send one batch of pending taps; move the cursor; return how many. Raises
        :class:`BackOfficeLinkError` (cursor unchanged) when the batch is not all taken."""
        records = self.journal.pending(self.batch)
        if not records:
            return 0
        answer = self.client.post_taps([_tap(r) for r in records])
        taken = set(answer["accepted"]) | set(answer["duplicates"])
        missing = [r["tap_id"] for r in records if r["tap_id"] not in taken]
        if missing:
            raise BackOfficeLinkError(200, "not_taken", f"taps not acknowledged: {missing[:5]}")
        self.journal.acknowledge(records[-1]["seq"])
        if self.on_acknowledged is not None:
            self.on_acknowledged(records)
        return len(records)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until nothing is pending; whether that happened."""
        deadline = time.monotonic() + timeout
        self.notify()
        while self.journal.pending(1):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def notify(self) -> None:
        """A new tap is in the journal: upload now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Start the thread (daemon: a crash of the gate leaves the journal as it is)."""
        self._thread = threading.Thread(target=self._run, name="tap-uploader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (an upload in progress finishes first)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.client.timeout + 1)

    def _run(self) -> None:
        delay = _BACKOFF_FIRST
        while not self._stop.is_set():
            try:
                sent = self.upload_once()
            except BackOfficeLinkError as exc:
                self.failures += 1
                self.status = f"failing: {exc}"
                level = (
                    logging.WARNING
                    if exc.status in (0, 429) or exc.status >= 500
                    else logging.ERROR
                )
                log.log(level, "upload failed (retry in %.1f s): %s", delay, exc)
                self._stop.wait(delay * random.uniform(0.8, 1.2))  # noqa: S311 (jitter)
                delay = min(delay * 2, self.backoff_max)
                continue
            except Exception as exc:  # a journal that cannot move its cursor: keep trying
                self.failures += 1
                self.status = f"failing: {type(exc).__name__}: {exc}"
                log.exception("upload failed")
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            delay = _BACKOFF_FIRST
            if sent:
                self.status = "ok"
                continue  # more may be pending
            self._wake.wait(self.idle_poll)
            self._wake.clear()


class DenyListPoller:
    """Keeps ``deny_list`` current from the back office every ``interval`` seconds
    (module docstring); the first poll is at :meth:`start`, unless the caller made one
    with :meth:`poll_once` (a gate does, before its first tap)."""

    def __init__(
        self, deny_list: DenyList, client: BackOfficeClient, *, interval: float = 60.0
    ) -> None:
        if interval <= 0:
            raise ValueError("the deny-list interval is > 0 s")
        self.deny_list = deny_list
        self.client = client
        self.interval = interval
        self.status = "not polled yet"
        self.polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> bool:
        """Fetch and apply the changes since the list's version; whether it changed."""
        answer = self.client.deny_list(self.deny_list.version)
        changed = self.deny_list.apply(answer)
        self.polls += 1
        self.status = f"version {self.deny_list.version}"
        return changed

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name="deny-list-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.client.timeout + 1)

    def _run(self) -> None:
        if self.polls:  # the caller polled once already (before the first tap)
            self._stop.wait(self.interval)
        while not self._stop.is_set():
            try:
                self.poll_once()
            except (BackOfficeLinkError, DenyListError) as exc:
                self.status = f"failing: {exc}"
                log.warning("deny-list poll failed (the gate keeps its list): %s", exc)
            except Exception:  # never let the thread die: the list only ages
                log.exception("deny-list poll failed")
            self._stop.wait(self.interval)
