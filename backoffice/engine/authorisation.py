"""Stage 2 of a pass: the deferred authorisation of each new aggregation's first tap."""

from __future__ import annotations

from collections.abc import Sequence

from backoffice.database import Connection
from backoffice.engine.context import ANSWER_BATCH, LOG_CALL, EngineContext, PassReport, Stage
from backoffice.engine.riders import deny_rider, join_par
from backoffice.store import now_text
from emvwire.cardref import card_reference
from emvwire.errors import EmvWireError
from emvwire.seal import SealError, open_box
from emvwire.tags import Tag
from emvwire.tlv import decode_flat
from emvwire.track2 import track2_pan
from hostlink.client import UNREACHABLE, HostError, HostOutcome

__all__ = ["DeferredAuthorisation"]


class DeferredAuthorisation(Stage):
    """Authorisations at the issuer (:mod:`backoffice.engine`, stage 2), with the
    back office's ``sealing_key`` (X25519 private key, :mod:`emvwire.seal`) and
    ``card_reference_key`` (:func:`emvwire.cardref.card_reference`)."""

    def __init__(
        self, context: EngineContext, *, sealing_key: bytes, card_reference_key: bytes
    ) -> None:
        super().__init__(context)
        self._sealing_key = sealing_key
        self._ref_key = card_reference_key

    def authorise(self, report: PassReport) -> None:
        """Authorise each new aggregation's first tap (:mod:`backoffice.engine`, stage 2),
        :data:`ANSWER_BATCH` at a time, in tap time order. Instances sharing a database
        claim disjoint batches (the rows are locked until the answers are recorded)."""
        total = int(self.store.conn.execute(
            "SELECT COUNT(*) FROM aggregations WHERE auth_state = 'pending'"
        ).fetchone()[0])  # fmt: skip
        if not total:
            return
        if self.issuer is None:
            report.auth_waiting = total
            return
        self.progress("authorise", 0, total)
        after: tuple[int, str] = (-1, "")
        done = 0
        while True:
            with self.store.db.claiming() as claim:
                rows = claim.execute(
                    "SELECT a.aggregation_id, a.rider_id, t.tap_id, t.card_reference, "  # noqa: S608
                    "t.icc_data, b.box, t.amount, t.time_ms FROM aggregations a "
                    "JOIN taps t ON t.tap_id = a.auth_tap_id LEFT JOIN tap_boxes b ON "
                    "b.seq = t.seq WHERE a.auth_state = 'pending' AND (t.time_ms > ? OR "
                    "(t.time_ms = ? AND a.aggregation_id > ?)) ORDER BY t.time_ms, "
                    f"a.aggregation_id LIMIT ?{self.store.db.claim('a')}",
                    (after[0], after[0], after[1], ANSWER_BATCH),
                ).fetchall()
                if not rows:
                    break
                after = (rows[-1][7], rows[-1][0])
                answers: list[tuple[str, int, str, str, int, HostOutcome | str]] = []
                for agg, rider, tap_id, ref, icc, box, amount, _ in rows:
                    answer = self._authorise_one(tap_id, ref, icc, box, report)
                    if answer is None:
                        report.auth_waiting += 1
                        continue
                    answers.append((agg, rider, tap_id, ref, amount, answer))
                self._record_answers(answers, report)
            done += len(rows)
            self.progress("authorise", min(done, total), total)
        self.progress("authorise", total, total)

    def _authorise_one(
        self, tap_id: str, ref: str, icc: bytes | None, box: bytes | None, report: PassReport
    ) -> HostOutcome | str | None:
        """The issuer's answer, an error text (the tap cannot be authorised), or
        ``None`` (no answer: later)."""
        assert self.issuer is not None
        if not icc or not box:
            return "the tap has no chip data or sealed track 2"
        try:
            track2 = open_box(self._sealing_key, box, context=tap_id.encode())
        except SealError:
            return "the sealed track 2 does not open with this back office's key"
        try:
            pan = track2_pan(track2)
            psn = decode_flat(icc).get(Tag.PAN_SEQUENCE_NUMBER)
        except EmvWireError:
            return "the tap's field 55 is not BER-TLV"
        if not pan or card_reference(self._ref_key, pan, psn) != ref:
            del track2
            return "the card reference does not match the card's track 2"
        request_id = f"bo:auth:{self.instance}:{tap_id}"
        report.issuer_calls += 1
        try:
            outcome = self.issuer.authorise(icc, track2, request_id=request_id)
        except HostError as exc:
            return f"the issuer refused the request: {exc}"
        except UNREACHABLE:
            return None
        finally:
            del track2
        if not outcome.answered:
            return None
        return outcome

    def _record_answers(
        self,
        done: Sequence[tuple[str, int, str, str, int, HostOutcome | str]],
        report: PassReport,
    ) -> None:
        if not done:
            return
        with self.store.write() as w:
            self._record(w, done, report)

    def _record(
        self,
        w: Connection,
        done: Sequence[tuple[str, int, str, str, int, HostOutcome | str]],
        report: PassReport,
    ) -> None:
        at = now_text()
        self.store.db.lock_riders(w, [rider for _, rider, _, _, _, _ in done])
        for agg, rider, tap_id, _ref, amount, answer in done:
            w.execute(
                "DELETE FROM tap_boxes WHERE seq = (SELECT seq FROM taps WHERE tap_id = ?)",
                (tap_id,),
            )
            if isinstance(answer, str):
                report.auth_failed += 1
                report.errors.append(f"{agg}: {answer}")
                w.execute(
                    "UPDATE aggregations SET auth_state = 'failed', error = ? "
                    "WHERE aggregation_id = ?",
                    (answer, agg),
                )
                continue
            state = "approved" if answer.approved else "declined"
            w.execute(
                "UPDATE aggregations SET auth_state = ?, transaction_id = ?, auth_amount = ?, "
                "response_code = ?, decline_reason = ? WHERE aggregation_id = ?",
                (state, answer.transaction_id, amount, answer.response_code,
                 answer.reason, agg),
            )  # fmt: skip
            w.execute(
                LOG_CALL,
                (answer.request_id, "authorisation", agg, answer.transaction_id,
                 int(answer.approved), answer.response_code, answer.reason, amount, at),
            )  # fmt: skip
            if answer.par:
                rider = join_par(self.store, w, rider, answer.par, report)
            if answer.approved:
                report.authorised += 1
            else:
                report.declined += 1
                report.deny_added += deny_rider(
                    self.store, w, rider, agg, answer.reason or "declined"
                )
