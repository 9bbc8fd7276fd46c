"""Stage 4 of a pass: aggregation. The periods that are over are frozen, then each is
completed at the issuer for its total, or reversed when nothing is due."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from backoffice.database import IDS
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
        if due is not None or close_all:
            self._freeze(report, now, due)
        self._settle(report, now)

    def _freeze(self, report: PassReport, now: datetime, due: str | None) -> None:
        """Freeze the open aggregations of ``due`` days or before (all: ``None``),
        authorised and with no tap waiting, rider by rider: each chunk of riders is
        locked first (riders another instance holds are left to it)."""
        at = now_text(now)
        day_clause = "" if due is None else "AND travel_day <= ?"
        days: tuple[Any, ...] = () if due is None else (due,)
        riders = [
            r
            for (r,) in self.store.conn.execute(
                "SELECT DISTINCT rider_id FROM aggregations WHERE state = 'open' "  # noqa: S608
                f"AND auth_state != 'pending' {day_clause} ORDER BY rider_id",
                days,
            )
        ]
        step = self.store.db.rider_chunk
        for i in range(0, len(riders), step):
            with self.store.write() as w:
                locked = self.store.db.lock_riders(w, riders[i : i + step], skip=True)
                if not locked:
                    continue
                report.closed += w.for_ids(
                    "UPDATE aggregations SET state = 'closing', closed_at = ? "  # noqa: S608
                    "WHERE rider_id = ANY(?) AND state = 'open' AND auth_state != 'pending' "
                    f"{day_clause} AND aggregation_id NOT IN (SELECT aggregation_id "
                    "FROM pending WHERE rider_id = ANY(?))",
                    locked,
                    (at, IDS, *days, IDS),
                )

    def _due_days(self, now: datetime, close_all: bool) -> str | None:
        """The last travel day whose aggregations may close at ``now``."""
        if close_all:
            return None
        day = self.rules.travel_day(now - self.rules.close_after) - timedelta(days=1)
        return day.isoformat()

    def _settle(self, report: PassReport, now: datetime) -> None:
        total = int(self.store.conn.execute(
            "SELECT COUNT(*) FROM aggregations WHERE state = 'closing'"
        ).fetchone()[0])  # fmt: skip
        if not total:
            return
        self.progress("aggregate", 0, total)
        after, done = "", 0
        while True:
            with self.store.db.claiming() as claim:
                rows = claim.execute(
                    "SELECT aggregation_id, rider_id, auth_state, transaction_id, total "  # noqa: S608
                    "FROM aggregations a WHERE state = 'closing' AND aggregation_id > ? "
                    f"ORDER BY aggregation_id LIMIT ?{self.store.db.claim('a')}",
                    (after, ANSWER_BATCH),
                ).fetchall()
                if not rows:
                    break
                after = rows[-1][0]
                results: list[tuple[str, int, str, int, str | None]] = []
                for agg, rider, auth_state, txn, amount in rows:
                    result = self._settle_one(agg, auth_state, txn, amount, report)
                    if result is not None:
                        results.append((agg, rider, result[0], result[1], result[2]))
                self._record_settled(results, report, now)
            done += len(rows)
            self.progress("aggregate", min(done, total), total)
        self.progress("aggregate", total, total)

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
            w.for_rows(
                "UPDATE aggregations SET state = v.column2, captured = v.column3, "
                "settled_at = v.column4, error = v.column5, next_retry_at = v.column6 "
                "FROM (VALUES) AS v WHERE aggregations.aggregation_id = v.column1 "
                "AND aggregations.state = 'closing'",
                [(agg, state, captured, at, error, retry if state == "debt" else None)
                 for agg, _, state, captured, error in results],
                ("TEXT", "TEXT", "BIGINT", "TEXT", "TEXT", "TEXT"),
            )  # fmt: skip
            w.for_rows(
                "INSERT INTO authorisations (request_id, kind, aggregation_id, approved, "
                "amount, at) SELECT * FROM (VALUES) AS v WHERE true ON CONFLICT (request_id) "
                "DO UPDATE SET amount = excluded.amount, at = excluded.at",
                [(f"bo:cap:{agg}", "completion", agg, 1, captured, at)
                 for agg, _, state, captured, _ in results if state == "completed"],
                ("TEXT", "TEXT", "TEXT", "INTEGER", "BIGINT", "TEXT"),
            )  # fmt: skip
            for _agg, rider, state, captured, _error in results:
                if state == "completed":
                    report.completed += 1
                    report.captured += captured
                elif state == "reversed":
                    report.reversed += 1
                elif state == "debt":
                    report.debts += 1
                    report.deny_added += deny_rider(self.store, w, rider, _agg, "debt")
                elif state == "written_off":
                    report.written_off += 1
