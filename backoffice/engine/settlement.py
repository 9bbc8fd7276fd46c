"""Stage 4 of a pass: aggregation. The periods that are over are frozen, then each is
completed at the issuer for its total, or reversed when nothing is due."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from backoffice.engine.context import ANSWER_BATCH, PassReport, Stage
from backoffice.engine.riders import deny_rider
from backoffice.store import now_text
from hostlink.client import UNREACHABLE, HostError

__all__ = ["Settlement"]


class Settlement(Stage):
    """Aggregations closed and settled at the issuer (:mod:`backoffice.engine`,
    stage 4)."""

    def close(self, report: PassReport, now: datetime, close_all: bool) -> None:
        """Freeze the periods that are over, then complete or reverse each at the
        issuer (:mod:`backoffice.engine`, stage 4)."""
        due = self._due_days(now, close_all)
        at = now_text(now)
        if due is not None or close_all:
            with self.store.write() as w:
                day_clause = "" if close_all else "AND travel_day <= ?"
                params: tuple[Any, ...] = (at,) if close_all else (at, due)
                cur = w.execute(
                    "UPDATE aggregations SET state = 'closing', closed_at = ? "  # noqa: S608
                    "WHERE state = 'open' AND auth_state != 'pending' "
                    f"{day_clause} AND aggregation_id NOT IN (SELECT aggregation_id FROM pending)",
                    params,
                )
                report.closed = cur.rowcount
        self._settle(report, now)

    def _due_days(self, now: datetime, close_all: bool) -> str | None:
        """The last travel day whose aggregations may close at ``now``."""
        if close_all:
            return None
        day = self.rules.travel_day(now - self.rules.close_after) - timedelta(days=1)
        return day.isoformat()

    def _settle(self, report: PassReport, now: datetime) -> None:
        rows = self.store.conn.execute(
            "SELECT aggregation_id, rider_id, auth_state, transaction_id, total "
            "FROM aggregations WHERE state = 'closing' ORDER BY aggregation_id"
        ).fetchall()
        if not rows:
            return
        self.progress("aggregate", 0, len(rows))
        results: list[tuple[str, int, str, int, str | None]] = []
        for i, (agg, rider, auth_state, txn, total) in enumerate(rows, 1):
            result = self._settle_one(agg, auth_state, txn, total, report)
            if result is not None:
                results.append((agg, rider, result[0], result[1], result[2]))
            if len(results) >= ANSWER_BATCH:
                self._record_settled(results, report, now)
                results = []
                self.progress("aggregate", i, len(rows))
        self._record_settled(results, report, now)
        self.progress("aggregate", len(rows), len(rows))

    def _settle_one(
        self, agg: str, auth_state: str, txn: str | None, total: int, report: PassReport
    ) -> tuple[str, int, str | None] | None:
        """(new state, captured, error) or ``None`` when the issuer did not answer."""
        if auth_state == "failed":
            return ("written_off" if total else "void", 0, None)
        if auth_state == "declined":
            return ("debt" if total else "void", 0, None)
        if self.issuer is None or txn is None:
            return None
        report.issuer_calls += 1
        try:
            if total == 0:
                try:
                    self.issuer.reverse(txn, request_id=f"bo:rev:{agg}")
                except HostError as exc:  # e.g. expired at the issuer: nothing is held
                    return ("reversed", 0, str(exc))
                return ("reversed", 0, None)
            if total > self.rules.aggregation_limit:
                return ("debt", 0, f"total {total} is above the aggregation limit")
            self.issuer.complete(txn, total, request_id=f"bo:cap:{agg}")
            return ("completed", total, None)
        except HostError as exc:  # insufficient funds, limit: a debt (capture retried)
            return ("debt", 0, str(exc))
        except UNREACHABLE:
            return None

    def _record_settled(
        self, results: Iterable[tuple[str, int, str, int, str | None]], report: PassReport,
        now: datetime,
    ) -> None:  # fmt: skip
        results = list(results)
        if not results:
            return
        at = now_text(now)
        retry = now_text(now)  # the first recovery attempt: in this pass (step 5)
        with self.store.write() as w:
            w.executemany(
                "UPDATE aggregations SET state = ?, captured = ?, settled_at = ?, error = ?, "
                "next_retry_at = CASE WHEN ? = 'debt' THEN ? END WHERE aggregation_id = ? "
                "AND state = 'closing'",
                [(state, captured, at, error, state, retry, agg)
                 for agg, _, state, captured, error in results],
            )  # fmt: skip
            w.executemany(
                "INSERT OR REPLACE INTO authorisations (request_id, kind, aggregation_id, "
                "approved, amount, at) VALUES (?, 'completion', ?, 1, ?, ?)",
                [(f"bo:cap:{agg}", agg, captured, at)
                 for agg, _, state, captured, _ in results if state == "completed"],
            )  # fmt: skip
            for _agg, rider, state, captured, _error in results:
                if state == "completed":
                    report.completed += 1
                    report.captured += captured
                elif state == "reversed":
                    report.reversed += 1
                elif state == "debt":
                    report.debts += 1
                    report.deny_added += deny_rider(w, rider, _agg, "debt")
                elif state == "written_off":
                    report.written_off += 1
