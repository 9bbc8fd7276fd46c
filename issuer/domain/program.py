"""The program's decision endpoint: real-time decisions on authorisations, signed both
ways (what the issuing platforms call a real-time authorisation webhook: Stripe
Issuing's ``issuing_authorization.request``, Marqeta's JIT funding, Lithic's ASA).

One endpoint per issuer (``issuer decisions set URL``), optional. During an
authorisation, once the issuer's own read phase is done and the cryptogram verified,
the issuer POSTs its proposed decision (:class:`ProgramRequest`: masked card, amount,
currency, merchant, terminal, the issuer's proposed outcome and reason; never the PAN,
track 2, the cryptogram or any other chip data) and waits at most the endpoint's
deadline for the program's answer (:class:`ProgramAnswer`): approve, decline, or
approve a smaller ``amount`` (a partial approval, when the terminal allows one).

Signatures (both ways, the webhook scheme of the conventions): the header
``Tapstack-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
over the raw body, the key being the secret's ASCII text as ``issuer decisions set``
showed it once (the database keeps it sealed under a key-store key). A receiver
recomputes, compares in constant time and refuses a ``t`` more than
:data:`TOLERANCE` seconds away; several ``v1`` values may be given (a rotation). The
answer must carry the request's ``id`` (so that a signed answer cannot be replayed
for another authorisation).

What the program may do: make the decision stricter, never laxer. Its decline
declines (``PROGRAM_DECLINED``); its smaller amount approves that much when the request
allows a partial approval, else declines; its approval approves only what the issuer
approves: the write phase still checks the ATC, the spending limits, velocity and
funds, and a proposal the issuer declined (a spending control, the CVM, transit) stays
declined whatever the program says. Requests the issuer cannot authenticate (an
unknown card, a card paused or expired, a cryptogram that does not verify) are never
sent. A retried request (same ``request_id``) may be sent again: the program
de-duplicates by ``request_id`` and ``terminal``.

No usable answer (time-out, connection refused, a status other than 200, a missing or
wrong signature, a body that is not an answer to this request) means the endpoint's
fallback: the issuer's own decision stands (``issuer``) or the authorisation is
declined (``decline``: ``PROGRAM_UNAVAILABLE``). Either way the authorisation records
what happened (:class:`~issuer.model.controls.ProgramDecision`: outcome, fallback and
cause, latency), in its own transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Final
from urllib.parse import urlsplit

import msgspec

from emvwire.contract import DeclineReason, SpendingControl
from issuer.errors import ValidationError
from issuer.model.controls import (
    DecisionEndpoint,
    Fallback,
    ProgramDecision,
    ProgramOutcome,
)
from issuer.model.entities import utc_now

if TYPE_CHECKING:
    from issuer.keys.base import KeyStore
    from issuer.ledger.repository import Ledger

__all__ = [
    "DEFAULT_DEADLINE_MS",
    "SIGNATURE_HEADER",
    "TOLERANCE",
    "Endpoint",
    "ProgramAnswer",
    "ProgramRequest",
    "Proposed",
    "Verdict",
    "check_url",
    "clear_endpoint",
    "decision_of",
    "endpoint_record",
    "load_endpoint",
    "read_answer",
    "set_endpoint",
    "sign",
    "verify",
]

#: The header of a signature, both ways.
SIGNATURE_HEADER: Final = "Tapstack-Signature"
#: Seconds a signature's time may be away from now.
TOLERANCE: Final = 300
#: The deadline when the operator gives none (Stripe Issuing's: 2 s).
DEFAULT_DEADLINE_MS: Final = 2000
_SEAL_AAD: Final = b"decision-endpoint"
_SECRET_PREFIX: Final = "dsec_"  # noqa: S105 - the prefix of a secret, not one


# -- signatures ---------------------------------------------------------------------


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value of ``body`` (module docstring): ``t=..,v1=..``."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(secret: bytes, body: bytes, header: str | None, *, now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time within
    :data:`TOLERANCE` of ``now`` (constant-time comparison; any of several ``v1``)."""
    if not header:
        return False
    stamp: int | None = None
    given: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            stamp = int(value)
        elif key == "v1":
            given.append(value)
    if stamp is None or not given:
        return False
    if abs((time.time() if now is None else now) - stamp) > TOLERANCE:
        return False
    expected = _mac(secret, stamp, body)
    return any(hmac.compare_digest(expected, v) for v in given)


# -- the messages -------------------------------------------------------------------


class Proposed(msgspec.Struct, kw_only=True):
    """The issuer's own decision so far (its read phase: the ATC, spending limits,
    velocity and funds are decided after the program answers)."""

    approved: bool
    reason: DeclineReason | None = None
    control: SpendingControl | None = None


class ProgramRequest(msgspec.Struct, kw_only=True):
    """What the issuer POSTs to the program (masked data only)."""

    id: Annotated[str, msgspec.Meta(description="the authorisation's transaction id")]
    type: str = "authorisation.request"
    created_at: str
    request_id: str
    terminal: str
    merchant: str
    mcc: str
    country: str
    card: Annotated[str, msgspec.Meta(description="masked PAN or token")]
    card_id: str | None = None
    token_id: str | None = None
    account_id: str | None = None
    amount: int
    currency: str
    partial_allowed: bool = False
    proposed: Proposed


class ProgramAnswer(msgspec.Struct, kw_only=True):
    """What the program answers: the request's ``id``, approve or not, and for a
    partial approval the ``amount`` it approves."""

    id: str
    approved: bool
    amount: int | None = None


_DECODE_ANSWER: Final = msgspec.json.Decoder(ProgramAnswer)
_ENCODE: Final = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The program's answer to one authorisation, or the fallback taken without one."""

    outcome: ProgramOutcome
    amount: int | None = None
    fallback: Fallback | None = None
    cause: str | None = None
    latency_ms: int = 0

    def apply(self, want: int, *, partial_allowed: bool) -> tuple[DeclineReason | None, int]:
        """What it makes of an approval of ``want`` (module docstring): a decline
        reason, or ``None`` and the amount to approve."""
        if self.outcome is ProgramOutcome.DECLINE:
            return DeclineReason.PROGRAM_DECLINED, want
        if self.outcome is ProgramOutcome.PARTIAL and self.amount is not None:
            if not partial_allowed:
                return DeclineReason.PROGRAM_DECLINED, want
            return None, min(want, self.amount)
        if self.outcome is ProgramOutcome.NONE and self.fallback is Fallback.DECLINE:
            return DeclineReason.PROGRAM_UNAVAILABLE, want
        return None, want

    def record(self, transaction_id: str) -> ProgramDecision:
        """As the authorisation records it."""
        return ProgramDecision(
            transaction_id, self.outcome, self.amount, self.fallback, self.cause,
            self.latency_ms, utc_now(),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The decision endpoint opened for use: its secret unsealed (never shown)."""

    url: str
    deadline_ms: int
    fallback: Fallback
    ca_pem: str | None
    created_at: str
    secret: bytes = field(repr=False)

    def request(self, message: ProgramRequest) -> tuple[bytes, str]:
        """The body of ``message`` and its signature header value."""
        body = _ENCODE.encode(message)
        return body, sign(self.secret, body)

    def fallback_for(self, cause: str, latency_ms: int) -> Verdict:
        """The verdict without a usable answer, for ``cause``."""
        return Verdict(ProgramOutcome.NONE, None, self.fallback, cause, latency_ms)


def read_answer(
    endpoint: Endpoint,
    request: ProgramRequest,
    status: int,
    signature: str | None,
    body: bytes,
    latency_ms: int,
) -> Verdict:
    """The verdict of the program's HTTP answer to ``request`` (module docstring):
    its outcome, or the fallback with the cause (``http_<status>``, ``bad_signature``,
    ``invalid_answer``)."""
    if status != 200:
        return endpoint.fallback_for(f"http_{status}", latency_ms)
    if not verify(endpoint.secret, body, signature):
        return endpoint.fallback_for("bad_signature", latency_ms)
    try:
        answer = _DECODE_ANSWER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return endpoint.fallback_for("invalid_answer", latency_ms)
    if not hmac.compare_digest(answer.id, request.id):
        return endpoint.fallback_for("invalid_answer", latency_ms)
    if not answer.approved:
        return Verdict(ProgramOutcome.DECLINE, None, latency_ms=latency_ms)
    if answer.amount is None or answer.amount >= request.amount:
        return Verdict(ProgramOutcome.APPROVE, None, latency_ms=latency_ms)
    if answer.amount <= 0:
        return endpoint.fallback_for("invalid_answer", latency_ms)
    return Verdict(ProgramOutcome.PARTIAL, answer.amount, latency_ms=latency_ms)


# -- setting the endpoint -----------------------------------------------------------


def check_url(url: str) -> str:
    """An endpoint URL: ``https://``, or ``http://`` to a loopback address only (a
    program on the issuer's own machine); :class:`ValidationError` otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError("the decision endpoint is an https:// URL")
    if parts.username or parts.password:
        raise ValidationError("the decision endpoint URL carries no credentials")
    if parts.scheme == "http":
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValidationError("plain http:// is for a loopback endpoint only: use https://")
    try:
        _ = parts.port
    except ValueError:
        raise ValidationError("the decision endpoint's port is not a number") from None
    return url


def set_endpoint(
    ledger: Ledger,
    keys: KeyStore,
    url: str,
    *,
    deadline_ms: int = DEFAULT_DEADLINE_MS,
    fallback: Fallback = Fallback.ISSUER,
    ca_pem: str | None = None,
    keep_secret: bool = False,
) -> tuple[DecisionEndpoint, str | None]:
    """Set the decision endpoint (replacing one): the record and its new secret (to
    show once), or ``None`` with ``keep_secret`` (the current endpoint's secret kept).
    A running service takes it from its next turn (the cache generation moves)."""
    check_url(url)
    if not 1 <= deadline_ms <= 60_000:
        raise ValidationError("the deadline is 1 to 60000 ms")
    if ca_pem is not None:
        try:
            ssl.create_default_context(cadata=ca_pem)
        except (ssl.SSLError, ValueError):
            raise ValidationError("the CA file holds no PEM certificate") from None
    secret: str | None = None
    with ledger.unit_of_work() as uow:
        current = uow.programs.endpoint()
        if keep_secret:
            if current is None:
                raise ValidationError("there is no endpoint whose secret to keep")
            sealed = current.secret_sealed
        else:
            secret = _SECRET_PREFIX + secrets.token_urlsafe(32)
            sealed = keys.seal(secret.encode(), _SEAL_AAD)
        record = DecisionEndpoint(url, deadline_ms, fallback, ca_pem, sealed, utc_now())
        uow.programs.set_endpoint(record)
        uow.commit()
    return record, secret


def endpoint_record(ledger: Ledger) -> DecisionEndpoint | None:
    """The decision endpoint as recorded (its secret sealed), if one is set."""
    with ledger.unit_of_work(write=False) as uow:
        return uow.programs.endpoint()


def load_endpoint(ledger: Ledger, keys: KeyStore) -> Endpoint | None:
    """The decision endpoint with its secret unsealed, if one is set."""
    record = endpoint_record(ledger)
    if record is None:
        return None
    secret = keys.unseal(record.secret_sealed, _SEAL_AAD)
    return Endpoint(
        record.url, record.deadline_ms, record.fallback, record.ca_pem, record.created_at, secret
    )


def clear_endpoint(ledger: Ledger) -> bool:
    """Remove the decision endpoint; whether there was one."""
    with ledger.unit_of_work() as uow:
        removed = uow.programs.clear_endpoint()
        uow.commit()
    return removed


def decision_of(ledger: Ledger, transaction_id: str) -> ProgramDecision | None:
    """What the program answered for an authorisation (``None``: it was not asked)."""
    with ledger.unit_of_work(write=False) as uow:
        uow.authorisations.get(transaction_id)
        return uow.programs.decision(transaction_id)
