"""Spending controls: what an account, a card or a token may spend, where and how much.

Controls (:class:`~issuer.model.controls.SpendingControls`, the names of the issuing
platforms: Stripe Issuing's ``allowed_categories`` / ``blocked_categories`` and
``spending_limits``, Lithic's velocity limits by amount and by count):

- merchant categories (ISO 18245 MCCs, the terminal's as registered), allowed or
  blocked, never both (refused when set);
- merchant countries (ISO 3166 numeric, the terminal's registered country), allowed or
  blocked, never both;
- a maximum per transaction (an authorisation with its increments);
- limits per calendar day, ISO 8601 week (from Monday 00:00), month, year (UTC) and all
  time, by amount spent and by count of approvals.

Every control that applies is checked: the token's (when a token pays), its card's and
their account's. A card's spending includes its tokens'; an account's its cards'. An
approved authorisation spends its hold while pending, what was captured once closed,
nothing once reversed or expired (refunds do not give spending back).

When they are checked (:mod:`issuer.domain.authorise`): after the cryptogram is
verified, so that a request that cannot prove it comes from the card learns nothing
of the controls (it is declined for its cryptogram, or the card's status, first), and
after the ATC is recorded (a replay is a replay, whatever the controls say); then
before every funds decision (conventions: "spending controls before any other
decision"). The merchant controls and the maximum are decided in the read phase, from
controls cached per cache generation (a change bumps it); the period limits in the
write phase, in SQL, under the account's row lock (:func:`allowed_amount`), so that
they count every approval written before, in the same group-commit batch or committed
by a concurrent one. A decline is ``SPENDING_CONTROL`` with the control named
(``daily_amount`` on ``card``); with a partial approval allowed, an amount limit that
leaves some room approves that much instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, NamedTuple

from emvwire.contract import SpendingControl
from issuer.errors import NotFoundError, ValidationError
from issuer.model.controls import ControlLevel, Limit, Measure, Period, SpendingControls
from issuer.model.entities import utc_now, utc_text
from issuer.model.pan import check_mcc

if TYPE_CHECKING:
    from issuer.ledger.repository import Ledger, UnitOfWork

__all__ = [
    "KEEP",
    "MAX_AMOUNT",
    "MAX_COUNT",
    "Breach",
    "Changes",
    "Keep",
    "Usage",
    "allowed_amount",
    "amend",
    "applying",
    "clear_controls",
    "controls_of",
    "currency_of",
    "limits_amount",
    "merchant_breach",
    "normalise_country",
    "period_start",
    "set_controls",
    "usage",
]

#: Bounds of a limit: an amount below 10^12 minor units (the contract's), a count below
#: a billion.
MAX_AMOUNT: Final = 10**12 - 1
MAX_COUNT: Final = 10**9


class Keep:
    """The value of a control :func:`amend` leaves as it is (not given)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = Keep()


class Breach(NamedTuple):
    """The control that declines (or limits) an authorisation, and where it is set."""

    name: str
    level: ControlLevel

    def wire(self) -> SpendingControl:
        """As the contract's decision names it."""
        return SpendingControl(name=self.name, level=self.level.value)


# -- setting controls -----------------------------------------------------------------


def normalise_country(code: str) -> str:
    """An ISO 3166 numeric country code (``250`` or ``0250``) as terminals keep it:
    four digits (EMV 9F1A's n3 in two bytes)."""
    text = str(code).strip()
    if not re.fullmatch(r"[0-9]{3,4}", text) or (len(text) == 4 and text[0] != "0"):
        raise ValidationError(f"a country is ISO 3166 numeric (250 or 0250), not {code!r}")
    return text.zfill(4)


def _mccs(values: Sequence[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(check_mcc(v.strip()) for v in values))
    if not out:
        raise ValidationError("an MCC list needs at least one MCC (or 'none' to remove it)")
    return out


def _countries(values: Sequence[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(normalise_country(v) for v in values))
    if not out:
        raise ValidationError("a country list needs at least one country (or 'none')")
    return out


def _bounded(name: str, value: int, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= top:
        raise ValidationError(f"{name} is 1 to {top}")
    return value


ListChange = Sequence[str] | None | Keep
NumberChange = int | None | Keep


@dataclass(frozen=True, slots=True)
class Changes:
    """Changes to a set of controls (:func:`amend`): a value sets a control, ``None``
    removes it, :data:`KEEP` leaves it; ``limits`` maps a limit's name
    (``daily_amount``, ``weekly_count``...) to its value or ``None``."""

    allowed_mccs: ListChange = KEEP
    blocked_mccs: ListChange = KEEP
    allowed_countries: ListChange = KEEP
    blocked_countries: ListChange = KEEP
    max_per_transaction: NumberChange = KEEP
    limits: Mapping[str, int | None] = field(default_factory=dict)


def _listed(
    change: ListChange,
    now: tuple[str, ...] | None,
    parse: Callable[[Sequence[str]], tuple[str, ...]],
) -> tuple[str, ...] | None:
    if isinstance(change, Keep):
        return now
    return None if change is None else parse(change)


def amend(
    current: SpendingControls | None,
    level: ControlLevel,
    subject_id: str,
    changes: Changes,
) -> SpendingControls:
    """``current`` (or no controls) with ``changes``. :class:`ValidationError` for a
    bad value, and for an allowed and a blocked list of one kind together (which one
    to keep is for the caller to say: remove the other)."""
    base = current or SpendingControls(level, subject_id)
    allowed = _listed(changes.allowed_mccs, base.allowed_mccs, _mccs)
    blocked = _listed(changes.blocked_mccs, base.blocked_mccs, _mccs)
    if allowed is not None and blocked is not None:
        raise ValidationError(
            "MCCs are allowed or blocked, never both: remove one list ('none') first"
        )
    allowed_c = _listed(changes.allowed_countries, base.allowed_countries, _countries)
    blocked_c = _listed(changes.blocked_countries, base.blocked_countries, _countries)
    if allowed_c is not None and blocked_c is not None:
        raise ValidationError(
            "countries are allowed or blocked, never both: remove one list ('none') first"
        )
    maximum = base.max_per_transaction
    if not isinstance(changes.max_per_transaction, Keep):
        maximum = (
            None
            if changes.max_per_transaction is None
            else _bounded("max_per_transaction", changes.max_per_transaction, MAX_AMOUNT)
        )
    values = {lim.name: lim for lim in base.limits}
    kinds = {f"{p.value}_{m.value}": (p, m) for m in Measure for p in Period}
    for name, value in changes.limits.items():
        if name not in kinds:
            raise ValidationError(f"no limit {name!r} (one of {', '.join(kinds)})")
        period, measure = kinds[name]
        if value is None:
            values.pop(name, None)
        else:
            top = MAX_AMOUNT if measure is Measure.AMOUNT else MAX_COUNT
            values[name] = Limit(period, measure, _bounded(name, value, top))
    return replace(
        base,
        allowed_mccs=allowed,
        blocked_mccs=blocked,
        allowed_countries=allowed_c,
        blocked_countries=blocked_c,
        max_per_transaction=maximum,
        limits=tuple(values[n] for n in kinds if n in values),
        updated_at=utc_now(),
    )


def currency_of(uow: UnitOfWork, level: ControlLevel, subject_id: str) -> str:
    """The currency of the account behind an account, card or token (amounts of its
    controls are in it); :class:`NotFoundError` if there is no such subject."""
    if level is ControlLevel.TOKEN:
        subject_id, level = uow.tokens.get(subject_id).card_id, ControlLevel.CARD
    if level is ControlLevel.CARD:
        subject_id = uow.cards.get(subject_id).account_id
    account = uow.accounts.get(subject_id)
    if account.id.startswith("sys_"):
        raise NotFoundError(f"no account {subject_id!r}")
    return account.currency


def set_controls(
    ledger: Ledger, level: ControlLevel, subject_id: str, changes: Changes
) -> SpendingControls:
    """Amend (:func:`amend`) the controls of an account, card or token and store them
    (a running service sees them from its next turn: the cache generation moves);
    removing every control removes the record."""
    with ledger.unit_of_work() as uow:
        currency_of(uow, level, subject_id)
        updated = amend(uow.controls.get(level, subject_id), level, subject_id, changes)
        if updated.empty:
            uow.controls.delete(level, subject_id)
        else:
            uow.controls.put(updated)
        uow.commit()
    return updated


def controls_of(ledger: Ledger, level: ControlLevel, subject_id: str) -> SpendingControls | None:
    """The controls set on one account, card or token (:class:`NotFoundError` if there
    is no such subject)."""
    with ledger.unit_of_work(write=False) as uow:
        currency_of(uow, level, subject_id)
        return uow.controls.get(level, subject_id)


def applying(ledger: Ledger, level: ControlLevel, subject_id: str) -> tuple[SpendingControls, ...]:
    """Every control that applies to a payment of this account, card or token: its
    own, its card's and its account's."""
    with ledger.unit_of_work(write=False) as uow:
        currency_of(uow, level, subject_id)
        if level is ControlLevel.ACCOUNT:
            found = uow.controls.get(level, subject_id)
            return () if found is None else (found,)
        token = uow.tokens.get(subject_id) if level is ControlLevel.TOKEN else None
        card = uow.cards.get(token.card_id if token else subject_id)
        return uow.controls.applying(
            account_id=card.account_id, card_id=card.id, token_id=token.id if token else None
        )


def clear_controls(ledger: Ledger, level: ControlLevel, subject_id: str) -> bool:
    """Remove every control of an account, card or token; whether it had any."""
    with ledger.unit_of_work() as uow:
        currency_of(uow, level, subject_id)
        removed = uow.controls.delete(level, subject_id)
        uow.commit()
    return removed


# -- checking them --------------------------------------------------------------------


def merchant_breach(
    controls: Iterable[SpendingControls], *, mcc: str, country: str
) -> Breach | None:
    """The first merchant control the terminal's MCC or country breaks (the token's
    controls first, the account's last), or ``None``."""
    for c in controls:
        if c.allowed_mccs is not None and mcc not in c.allowed_mccs:
            return Breach("allowed_mccs", c.level)
        if c.blocked_mccs is not None and mcc in c.blocked_mccs:
            return Breach("blocked_mccs", c.level)
        if c.allowed_countries is not None and country not in c.allowed_countries:
            return Breach("allowed_countries", c.level)
        if c.blocked_countries is not None and country in c.blocked_countries:
            return Breach("blocked_countries", c.level)
    return None


def limits_amount(controls: Iterable[SpendingControls]) -> bool:
    """Whether any control bounds the amount or the count (a maximum or a limit)."""
    return any(c.max_per_transaction is not None or c.limits for c in controls)


def period_start(period: Period, now: datetime) -> str:
    """The start of the current ``period`` as a record time (``""`` for all time):
    00:00 UTC of the day, of the week's Monday, of the month's or the year's first day."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAILY:
        return utc_text(day)
    if period is Period.WEEKLY:
        return utc_text(day - timedelta(days=day.weekday()))
    if period is Period.MONTHLY:
        return utc_text(day.replace(day=1))
    if period is Period.YEARLY:
        return utc_text(day.replace(month=1, day=1))
    return ""


def allowed_amount(
    uow: UnitOfWork,
    account_id: str,
    controls: Sequence[SpendingControls],
    want: int,
    *,
    already: int = 0,
    counts: bool = True,
    now: datetime | None = None,
) -> tuple[int, Breach | None]:
    """How much of ``want`` the amount controls allow now, and the control that binds
    (``None``: all of it). ``already`` is what the authorisation holds before (an
    increment: the maximum per transaction bounds the total); ``counts`` whether this
    is a new approval (a count limit reached allows nothing). A control with period
    limits locks the account row first, then sums the spending in SQL in the caller's
    transaction (module docstring)."""
    best, binding = want, None
    for c in controls:
        if c.max_per_transaction is not None and c.max_per_transaction - already < best:
            best, binding = (
                max(0, c.max_per_transaction - already),
                Breach("max_per_transaction", c.level),
            )
    limited = [c for c in controls if c.limits]
    if not limited:
        return best, binding
    uow.accounts.get(account_id, for_update=True)
    when = now or datetime.now(UTC)
    for c in limited:
        rules = [lim for lim in c.limits if counts or lim.measure is Measure.AMOUNT]
        sums = uow.controls.spent(
            c.level, c.subject_id, [period_start(r.period, when) for r in rules]
        )
        for rule, (amount, count) in zip(rules, sums, strict=True):
            if rule.measure is Measure.COUNT:
                if count >= rule.value:
                    return 0, Breach(rule.name, c.level)
            elif rule.value - amount < best:
                best, binding = max(0, rule.value - amount), Breach(rule.name, c.level)
    return best, binding


class Usage(NamedTuple):
    """A limit of a set of controls and what is used of it now."""

    level: ControlLevel
    limit: Limit
    used: int


def usage(ledger: Ledger, controls: Sequence[SpendingControls]) -> list[Usage]:
    """Each limit of ``controls`` with the amount or count used in its current period."""
    out: list[Usage] = []
    now = datetime.now(UTC)
    with ledger.unit_of_work(write=False) as uow:
        for c in controls:
            sums = uow.controls.spent(
                c.level, c.subject_id, [period_start(lim.period, now) for lim in c.limits]
            )
            for lim, (amount, count) in zip(c.limits, sums, strict=True):
                out.append(Usage(c.level, lim, amount if lim.measure is Measure.AMOUNT else count))
    return out
