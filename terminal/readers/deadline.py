"""Calls that may never return, run so that the caller stops waiting at a deadline.

A card that never answers blocks whatever waits for it: pyscard's ``SCardTransmit``
(pcscd's vpcd driver waits for the card for ever, and ``SCardCancel`` does not cancel a
transmit), or the ``process`` of an in-process card. :class:`Worker` runs such calls
one at a time in a daemon thread of its own: :meth:`Worker.call` returns the call's
result or raises its exception, or raises :class:`DeadlineError` once the deadline
has passed. The thread is then left with the call (a thread cannot be stopped from
outside): the worker is *stuck* until the call returns, and the next call gets a new
thread. :meth:`Worker.after_stuck` runs a clean-up once the stuck call returns (the
pcsc driver releases the PC/SC context that the call holds there).

The thread ends after :data:`IDLE_SECONDS` without a call (a reader left unclosed
keeps no thread), and a later call starts another. A stuck worker refuses further
calls (:class:`WorkerStuckError`) rather than leaving one thread behind per deadline:
the caller waits for it (:meth:`Worker.wait`) or reports the reader busy.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Final, Generic, TypeVar

from terminal.readers.base import LazyLogger

__all__ = ["IDLE_SECONDS", "DeadlineError", "Worker", "WorkerStuckError"]

log = LazyLogger(__name__)

#: Seconds a worker's thread waits for the next call before it ends.
IDLE_SECONDS: Final = 5.0

T = TypeVar("T")


class DeadlineError(Exception):
    """The call did not return before its deadline (it goes on in its thread)."""


class WorkerStuckError(Exception):
    """An earlier call passed its deadline and has not returned yet."""


class _Job(Generic[T]):
    """One call: ``finished`` is held until it returns (a bare lock is the cheapest
    hand-over between two threads: a card's command pays it on every APDU); ``lock``
    guards ``done`` and ``cleanup`` between the caller and the worker."""

    __slots__ = ("cleanup", "done", "error", "finished", "fn", "lock", "value")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.finished = threading.Lock()
        self.finished.acquire()
        self.lock = threading.Lock()
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None
        self.cleanup: Callable[[], None] | None = None

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as exc:  # handed to the caller, which raises it
            self.error = exc
        with self.lock:
            self.done = True
            cleanup = self.cleanup
        self.finished.release()
        if cleanup is not None:
            _clean(cleanup)

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` s (``None``: for ever) for the call to return."""
        if not self.finished.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return False
        self.finished.release()  # for any other waiter
        return True


def _clean(cleanup: Callable[[], None]) -> None:
    try:
        cleanup()
    except Exception as exc:  # a clean-up after an abandoned call must not kill a thread
        log.debug("clean-up after a late call failed: %s", exc)


class Worker:
    """One daemon thread running calls with a deadline (module docstring)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job[object] | None] | None = None
        self._stuck: _Job[object] | None = None

    def _serve(self, jobs: queue.SimpleQueue[_Job[object] | None]) -> None:
        while True:
            try:
                job = jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:  # a call puts its job under the same lock
                    if not jobs.empty():
                        continue
                    if self._jobs is jobs:
                        self._jobs = None
                    return
            if job is None:
                return
            job.run()

    def __repr__(self) -> str:
        return f"Worker({self.name!r}, stuck={self.stuck})"

    @property
    def stuck(self) -> bool:
        """Whether a call passed its deadline and has not returned yet."""
        return self._stuck is not None and not self._stuck.done

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` s (``None``: for ever) for a stuck call to return;
        ``True`` when no call is stuck any more."""
        job = self._stuck
        return job is None or job.wait(timeout)

    def call(self, fn: Callable[[], T], timeout: float) -> T:
        """``fn()`` in the worker's thread: its result, or its exception raised here, or
        :class:`DeadlineError` after ``timeout`` seconds (``fn`` goes on running).
        :class:`WorkerStuckError` while an earlier call is stuck."""
        if self.stuck:
            raise WorkerStuckError(f"{self.name}: an earlier call has not returned")
        job: _Job[T] = _Job(fn)
        with self._lock:
            jobs = self._jobs
            if jobs is None:
                jobs = self._jobs = queue.SimpleQueue()
                thread = threading.Thread(target=self._serve, args=(jobs,), name=self.name)
                thread.daemon = True
                thread.start()
            jobs.put(job)  # type: ignore[arg-type]
        if not job.wait(timeout):
            with job.lock:
                late = not job.done
            if late:
                with self._lock:
                    jobs.put(None)  # that thread ends once the call returns
                    if self._jobs is jobs:
                        self._jobs = None
                self._stuck = job  # type: ignore[assignment]
                raise DeadlineError(f"{self.name}: no return within {timeout:.3f} s")
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[return-value]

    def after_stuck(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` once the stuck call returns (at once when none is stuck)."""
        job = self._stuck
        if job is not None:
            with job.lock:
                if not job.done:
                    job.cleanup = cleanup
                    return
        _clean(cleanup)

    def close(self) -> None:
        """End the worker's thread once it is idle (a stuck call keeps it until it returns)."""
        with self._lock:
            if self._jobs is not None:
                self._jobs.put(None)
                self._jobs = None
