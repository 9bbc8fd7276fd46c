"""Helpers of the back office's NATS tests: the operator names of one test (a random
suffix: the NATS server is shared) deleted after it, a consumer run in a thread, gates'
journals filled with taps, and an issuer two engines may share."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.js.errors

from backoffice.fares import FareRules
from backoffice.store import Store
from backoffice.stream import DEFAULT_ACK_WAIT, Names, NatsLink, TapConsumer, setup
from hostlink.client import HostOutcome
from terminal.apps.journal import Journal
from tests.backoffice.taps import FakeIssuer

__all__ = [
    "LockedIssuer",
    "consuming",
    "fill_journal",
    "journal_of",
    "new_operator",
    "remove_operator",
    "set_up_operator",
    "wait_for",
]


def new_operator() -> str:
    """An operator name of this test alone."""
    return f"t{uuid.uuid4().hex[:12]}"


def set_up_operator(url: str, operator: str, *, ack_wait: float = DEFAULT_ACK_WAIT) -> NatsLink:
    """The stream, consumer and bucket of ``operator`` made; the link to them."""
    link = NatsLink(url, Names(operator))
    asyncio.run(setup(link, ack_wait=ack_wait))
    return link


def remove_operator(url: str, operator: str) -> None:
    """Delete ``operator``'s stream and bucket (whatever of them exists)."""

    async def remove() -> None:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            names = Names(operator)
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(names.stream)
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_key_value(names.bucket)
        finally:
            await nc.close()

    asyncio.run(remove())


@contextlib.contextmanager
def consuming(store: Store, rules: FareRules, link: NatsLink) -> Iterator[TapConsumer]:
    """A :class:`TapConsumer` running in a thread of its own until the block ends."""
    consumer = TapConsumer(store, rules, link, batch=50, deny_every=0.1)
    ready = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        async def run() -> None:
            box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await consumer.run(box["stop"])

        asyncio.run(run())

    thread = threading.Thread(target=main, name="consumer", daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield consumer
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)


def fill_journal(journal: Journal, taps: list[dict[str, Any]]) -> None:
    """Append ``taps`` (numbered 1, 2... by the journal, as their ids say)."""
    for tap in taps:
        stored = journal.append(tap)
        assert tap["tap_id"].endswith(f":{stored['seq']}")


def wait_for(what: Callable[[], bool], timeout: float, why: str) -> None:
    """Poll ``what`` until true (an assertion naming ``why`` after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, f"timed out: {why}"
        time.sleep(0.05)


@dataclass
class LockedIssuer(FakeIssuer):
    """A :class:`FakeIssuer` two engines in two threads may call at once."""

    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authorise(
        self, icc_data: bytes, track2: bytes, *, request_id: str | None = None
    ) -> HostOutcome:
        with self._lock:
            return super().authorise(icc_data, track2, request_id=request_id)

    def complete(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            return super().complete(transaction_id, amount, request_id=request_id)

    def reverse(self, transaction_id: str, *, request_id: str | None = None) -> dict[str, Any]:
        with self._lock:
            return super().reverse(transaction_id, request_id=request_id)

    def resubmit(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> HostOutcome:
        with self._lock:
            return super().resubmit(transaction_id, amount, request_id=request_id)


def journal_of(folder: Path) -> Journal:
    """A gate's journal in ``folder`` (no fsync: the tests of the layers above)."""
    return Journal(folder, durable=False)
