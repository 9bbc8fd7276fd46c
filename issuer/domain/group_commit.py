"""Group commit: the write work of concurrent requests in shared transactions.

A durable commit costs a log flush (an ``fsync`` of SQLite's WAL, PostgreSQL's WAL
flush) and, on a server, round trips. Group commit (Gray and Reuter, *Transaction
Processing: Concepts and Techniques*, §9.4.7; PostgreSQL's ``commit_delay``) makes
the requests that arrive while a transaction is being written wait for it, then runs
them together in the next transaction with one commit. Nothing is answered before it
is durable: :meth:`GroupCommit.run` returns only after the commit of its batch.

Leader and followers, no thread of its own: a caller that finds no free leader slot
queues its job and waits; one that finds a slot leads a batch of the queued jobs (its
own first). Jobs run one after another in the batch's unit of work, in their order
key's order (stable), so that every batch takes its rows' locks in one order (accounts
by id: no lock cycles between two batches) and the jobs of one card keep their order.
A job that raises is taken out: the transaction is rolled back, the caller gets the
exception (a :class:`~issuer.errors.TransientError` is retried by the caller), and the
other jobs run again in a new transaction, so one bad request never costs another's.
A job must therefore have no effect but through its unit of work.

A caller's batch (:meth:`GroupCommit.run_batch`) may also say how to run its jobs
together (``together``: one function over the unit of work and all the jobs, which
a ledger can then send in a few round trips rather than a few per job); its answer
is read as if the jobs had run one after another (the first exception is the job
taken out). If ``together`` itself raises, or the commit after it fails (a ledger may
send the last of together's statements with the commit), the batch is run again job
by job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

if TYPE_CHECKING:
    from issuer.ledger.repository import Ledger, UnitOfWork

__all__ = ["MAX_BATCH", "POSTGRES_LEADERS", "GroupCommit"]

#: Largest batch: bounds the wait of the last job of a batch.
MAX_BATCH: Final = 48
#: Batches that may run at once on PostgreSQL, whose row locks let independent batches
#: proceed together; SQLite has one writer (one batch at a time, queued here rather than
#: in SQLite's busy handler).
POSTGRES_LEADERS: Final = 4

T = TypeVar("T")

#: Runs the works of a batch's jobs in one unit of work: each job's value, in order,
#: up to the first job that failed (its exception, last).
Together = Callable[["UnitOfWork", list[Any]], list[Any]]


@dataclass(slots=True)
class _Job(Generic[T]):
    work: Callable[[UnitOfWork], T]
    order: str
    value: Any = None
    error: BaseException | None = None
    done: bool = False
    #: In a batch that a leader took from the queue (running, or about to).
    taken: bool = False


#: What :meth:`GroupCommit._attempt` answers when the jobs are to run one by one.
_ALONE: Final[_Job[Any]] = _Job(lambda uow: None, "")


class GroupCommit:
    """Runs write jobs of concurrent threads in shared transactions (module docstring).

    ``leaders`` batches may run at once: 1 for SQLite (one writer), a few for
    PostgreSQL, whose row locks let independent batches proceed together.
    """

    def __init__(self, ledger: Ledger, *, leaders: int = 1, max_batch: int = MAX_BATCH) -> None:
        self._ledger = ledger
        self._leaders_max = max(1, leaders)
        self._max_batch = max(1, max_batch)
        self._cond = threading.Condition()
        self._queue: list[_Job[Any]] = []
        self._leaders = 0

    @classmethod
    def for_ledger(cls, ledger: Ledger) -> GroupCommit:
        """Group commit on ``ledger`` with as many leaders as its dialect allows
        (:data:`POSTGRES_LEADERS`, one on SQLite)."""
        return cls(ledger, leaders=1 if ledger.dialect == "sqlite" else POSTGRES_LEADERS)

    def run(self, work: Callable[[UnitOfWork], T], *, order: str = "") -> T:
        """Run ``work(uow)`` in a shared transaction; its value once committed, or its
        exception (then nothing of it was written)."""
        job: _Job[T] = _Job(work, order)
        with self._cond:
            self._queue.append(job)
            # A job another leader took is waited for even when a leader slot is free.
            while not job.done and (job.taken or self._leaders >= self._leaders_max):
                self._cond.wait()
            if not job.done:
                self._queue.remove(job)
                batch = [job, *self._queue[: self._max_batch - 1]]
                del self._queue[: self._max_batch - 1]
                for taken in batch:
                    taken.taken = True
                self._leaders += 1
        if not job.done:
            try:
                self._execute(batch)
            finally:
                with self._cond:
                    self._leaders -= 1
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[no-any-return]

    def run_batch(
        self,
        jobs: Sequence[tuple[Callable[[UnitOfWork], T], str]],
        *,
        together: Together | None = None,
    ) -> list[T | Exception]:
        """Run ``(work, order)`` jobs of one caller in shared transactions (the caller
        gathered them, e.g. an event loop's turn); each job's value or exception.
        ``together`` (module docstring) runs the works in order, in one go."""
        batch: list[_Job[T]] = [_Job(work, order) for work, order in jobs]
        if not batch:
            return []
        with self._cond:
            while self._leaders >= self._leaders_max:
                self._cond.wait()
            self._leaders += 1
        try:
            self._execute(batch, together)
        finally:
            with self._cond:
                self._leaders -= 1
                self._cond.notify_all()
        out: list[T | Exception] = []
        for job in batch:
            if job.error is None:
                out.append(job.value)
            elif isinstance(job.error, Exception):
                out.append(job.error)
            else:  # pragma: no cover - _execute re-raises those
                raise job.error
        return out

    def _execute(self, batch: list[_Job[Any]], together: Together | None = None) -> None:
        pending = sorted(batch, key=lambda j: j.order)
        try:
            while pending:
                failed = self._attempt(pending, together)
                if failed is _ALONE:
                    together = None
                    continue
                if failed is None:
                    for job in pending:
                        job.done = True
                    return
                failed.done = True
                pending = [j for j in pending if j is not failed]
        except BaseException as exc:  # begin or commit failed: every job of the batch
            for job in pending:
                job.value, job.error, job.done = None, exc, True
            if not isinstance(exc, Exception):
                raise

    def _attempt(self, pending: list[_Job[Any]], together: Together | None) -> _Job[Any] | None:
        """One transaction over ``pending``: ``None`` once committed, else the job that
        raised (rolled back, nothing committed), or :data:`_ALONE` if ``together`` or
        the commit after it raised (rolled back: the jobs are to run one by one)."""
        with self._ledger.unit_of_work() as uow:
            if together is not None:
                try:
                    values = together(uow, [job.work for job in pending])
                except Exception:
                    return _ALONE
                short = len(values) < len(pending)
                if len(values) > len(pending) or (
                    short and not (values and isinstance(values[-1], Exception))
                ):
                    return _ALONE  # a together that lost jobs: one by one
                for job, value in zip(pending, values, strict=False):
                    if isinstance(value, Exception):
                        job.value, job.error = None, value
                        return job
                    job.value = value
                try:
                    uow.commit()  # may send the last of together's statements
                except Exception:
                    return _ALONE
                return None
            for job in pending:
                try:
                    job.value = job.work(uow)
                except Exception as exc:
                    job.value, job.error = None, exc
                    return job
            uow.commit()
        return None
