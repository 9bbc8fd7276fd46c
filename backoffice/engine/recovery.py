"""Stage 5 of a pass: debt recovery. A closed aggregation whose authorisation was
declined (or whose completion was refused) is resubmitted at the issuer, a limited
number of times over a limited period, then written off."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from backoffice.engine.context import LOG_CALL, PassReport, Stage
from backoffice.store import now_text
from hostlink.client import UNREACHABLE, HostError, HostOutcome

__all__ = ["DebtRecovery"]

#: The aggregations whose next recovery attempt is due (at ``?``).
_DUE: Final = "state = 'debt' AND (next_retry_at IS NULL OR next_retry_at <= ?)"


class DebtRecovery(Stage):
    """Debts resubmitted, recovered or written off (:mod:`backoffice.engine`, stage 5)."""

    def recover(self, report: PassReport, now: datetime) -> None:
        """Resubmit debts that are due (:mod:`backoffice.engine`, stage 5)."""
        if self.issuer is None:
            return
        conn, db = self.store.conn, self.store.db
        due = (now_text(now),)
        debts = [
            agg
            for (agg,) in conn.execute(
                f"SELECT aggregation_id FROM aggregations WHERE {_DUE} ORDER BY aggregation_id",  # noqa: S608
                due,
            )
        ]
        for agg in debts:
            key = f"bo:dr:{agg}"  # one instance at a time on an aggregation in debt
            if not db.try_lock(conn, key):
                continue
            try:
                row = conn.execute(  # read again under the lock: another may have been first
                    "SELECT aggregation_id, rider_id, auth_state, transaction_id, total, "  # noqa: S608
                    "opened_at, recovery_attempts, recovery_request, recovery_transaction_id "
                    f"FROM aggregations WHERE aggregation_id = ? AND {_DUE}",
                    (agg, *due),
                ).fetchone()
                if row is not None:
                    self._recover_one(report, now, *row)
            finally:
                db.unlock(conn, key)

    def _recover_one(
        self,
        report: PassReport,
        now: datetime,
        agg: str,
        rider: int,
        auth_state: str,
        txn: str,
        total: int,
        opened_at: str,
        attempts: int,
        in_flight: str | None,
        recovery_txn: str | None,
    ) -> None:
        assert self.issuer is not None
        rules = self.rules
        opened = datetime.fromisoformat(opened_at.replace("Z", "+00:00"))
        expired = now - opened > rules.debt_retry_period
        if in_flight is None and recovery_txn is None:
            if expired or attempts >= rules.debt_retry_max:
                self._write_off(agg, report, "debt recovery attempts exhausted")
                return
            attempts += 1
            in_flight = f"bo:dr:{agg}:{attempts}"
            with self.store.write() as w:  # the request id is on disk before it is sent
                w.execute(
                    "UPDATE aggregations SET recovery_attempts = ?, recovery_request = ? "
                    "WHERE aggregation_id = ?",
                    (attempts, in_flight, agg),
                )
        capture_on = recovery_txn
        if capture_on is None:
            report.issuer_calls += 1
            try:
                if auth_state == "approved":  # a refused capture: try the capture again
                    capture_on = txn
                else:
                    assert in_flight is not None
                    outcome = self.issuer.resubmit(txn, request_id=in_flight)
                    if not outcome.answered:
                        return
                    self._log_call(in_flight, "resubmission", agg, outcome, now)
                    if not outcome.approved:
                        with self.store.write() as w:
                            w.execute(
                                "UPDATE aggregations SET recovery_request = NULL, "
                                "next_retry_at = ?, error = ? WHERE aggregation_id = ?",
                                (now_text(now + rules.debt_retry_interval),
                                 f"resubmission declined: {outcome.reason}", agg),
                            )  # fmt: skip
                        return
                    capture_on = outcome.transaction_id
                    with self.store.write() as w:
                        w.execute(
                            "UPDATE aggregations SET recovery_transaction_id = ? "
                            "WHERE aggregation_id = ?",
                            (capture_on, agg),
                        )
            except HostError as exc:
                self._write_off(agg, report, f"the issuer refused the resubmission: {exc}")
                return
            except UNREACHABLE:
                return
        report.issuer_calls += 1
        try:
            self.issuer.complete(capture_on, total, request_id=f"bo:cap:{agg}")
        except HostError as exc:
            with self.store.write() as w:
                w.execute(
                    "UPDATE aggregations SET recovery_request = NULL, next_retry_at = ?, "
                    "error = ? WHERE aggregation_id = ?",
                    (now_text(now + rules.debt_retry_interval), str(exc), agg),
                )
            return
        except UNREACHABLE:
            return
        with self.store.write() as w:
            w.execute(
                "UPDATE aggregations SET state = 'recovered', captured = ?, settled_at = ?, "
                "recovery_request = NULL, error = NULL WHERE aggregation_id = ?",
                (total, now_text(now), agg),
            )
            report.recovered += 1
            report.captured += total
            still = w.execute(
                "SELECT 1 FROM aggregations WHERE rider_id = ? AND (state = 'debt' OR "
                "(auth_state = 'declined' AND state IN ('open', 'closing'))) LIMIT 1",
                (rider,),
            ).fetchone()
            if still is None:
                found = w.execute(
                    "SELECT card_reference FROM deny_list WHERE rider_id = ?", (rider,)
                )
                refs = [r for (r,) in found]
                report.deny_removed += self.store.deny_remove(w, refs)

    def _write_off(self, agg: str, report: PassReport, why: str) -> None:
        with self.store.write() as w:
            w.execute(
                "UPDATE aggregations SET state = 'written_off', error = ?, recovery_request = NULL "
                "WHERE aggregation_id = ?",
                (why, agg),
            )
        report.written_off += 1

    def _log_call(self, request_id: str, kind: str, agg: str, outcome: HostOutcome,
                  now: datetime) -> None:  # fmt: skip
        with self.store.write() as w:
            w.execute(
                LOG_CALL,
                (request_id, kind, agg, outcome.transaction_id, int(outcome.approved),
                 outcome.response_code, outcome.reason, None, now_text(now)),
            )  # fmt: skip
