"""Webhook endpoints and how their deliveries are signed.

Signatures follow the scheme issuing platforms use (Stripe's webhook signatures, with
a timestamp, a replay window and several signatures during a rotation): every
delivery is an HTTP
POST of the event's JSON with the headers

- ``Tapstack-Signature: t=<unix time>,v1=<hex>`` where ``<hex>`` is
  HMAC-SHA256 keyed with the endpoint's secret (the whole ``whsec_...`` text, UTF-8)
  over ``"<t>.<raw body>"``; during a secret rotation's grace period one ``v1`` per
  secret that signs (the new one first);
- ``Tapstack-Event-Id: evt_...``: the same for every retry of one event, so that the
  receiver drops a delivery it has seen (at least once, never exactly once).

A receiver recomputes the HMAC over the bytes it received with each of its secrets,
compares in constant time against every ``v1``, and refuses a ``t`` more than
:data:`SIGNATURE_TOLERANCE` seconds from its clock (a replayed delivery).

Endpoint URLs are ``https://`` (TLS verified against the system's trust store, or the
endpoint's CA file). Plain ``http://`` is accepted only for a loopback host
(127.0.0.0/8, ::1, localhost) and only when asked for (``dev_plain_http``: local
development and tests), never for another host. The secret is generated from the
CSPRNG, shown once when the endpoint is added or its secret rotated, and kept sealed
like a PAN (AES-256-GCM under the key store's data key, the endpoint id as
associated data, :meth:`issuer.keys.base.KeyStore.seal`).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from emvwire.pki import PkiError
from emvwire.tls import client_context
from issuer.domain.events import check_event_type
from issuer.errors import InvalidStateError, NotFoundError, ValidationError
from issuer.model.entities import new_id, utc_in, utc_now
from issuer.model.events import ALL_EVENTS, EndpointStatus, WebhookEndpoint

if TYPE_CHECKING:
    from issuer.domain.audit import Acting
    from issuer.keys.base import KeyStore
    from issuer.ledger.repository import Ledger, UnitOfWork

__all__ = [
    "EVENT_ID_HEADER",
    "MAX_GRACE",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "SIGNATURE_TOLERANCE",
    "Webhooks",
    "check_url",
    "is_loopback",
    "new_secret",
    "signature_header",
]

SIGNATURE_HEADER: Final = "Tapstack-Signature"
EVENT_ID_HEADER: Final = "Tapstack-Event-Id"
#: What a receiver should accept between ``t`` and its clock (seconds; Stripe's 300).
SIGNATURE_TOLERANCE: Final = 300
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a prefix, not a secret
#: The longest grace period of a rotated secret.
MAX_GRACE: Final = timedelta(days=7)
_DESCRIPTION: Final = 200
_URL_MAX: Final = 2048
_HOST: Final = re.compile(r"[A-Za-z0-9.\-\[\]:]+")
_STATUS_ACTIONS: Final = {
    EndpointStatus.ENABLED: "webhook_endpoint.enable",
    EndpointStatus.DISABLED: "webhook_endpoint.disable",
}


def new_secret() -> str:
    """A signing secret: ``whsec_`` and 32 bytes from the CSPRNG (base64url)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature_header(signing: Sequence[str], timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex>[,v1=<hex>...]``: HMAC-SHA256 of ``"<t>.<body>"`` under
    each secret of ``signing`` (module docstring)."""
    message = str(timestamp).encode() + b"." + body
    parts = [f"t={timestamp}"]
    for secret in signing:
        parts.append("v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest())
    return ",".join(parts)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, dev_plain_http: bool = False) -> str:
    """An endpoint URL as accepted (module docstring), else :class:`ValidationError`."""
    url = str(url).strip()
    if not url or len(url) > _URL_MAX:
        raise ValidationError(f"a webhook URL is 1 to {_URL_MAX} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError(f"not a URL: {url!r}") from None
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host or not _HOST.fullmatch(host):
        raise ValidationError(f"a webhook URL is https://HOST[:PORT]/PATH, not {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("a webhook URL holds no user name or password")
    if parts.fragment:
        raise ValidationError("a webhook URL has no #fragment")
    if port == 0:
        raise ValidationError("a webhook URL's port is 1 to 65535")
    if parts.scheme == "http" and not (dev_plain_http and is_loopback(host)):
        raise ValidationError(
            "a webhook URL is https://: plain http:// only to this machine (localhost, "
            "127.0.0.1, ::1) for local development, with --dev-plain-http"
        )
    return url


def _events(names: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not chosen:
        raise ValidationError("subscribe to at least one event type (or *)")
    if ALL_EVENTS in chosen:
        if len(chosen) > 1:
            raise ValidationError("* is every event type: give it alone")
        return chosen
    return tuple(check_event_type(n) for n in chosen)


def _aad(endpoint_id: str) -> bytes:
    return f"webhook:{endpoint_id}".encode()


class Webhooks:
    """Webhook endpoints (the CLI's ``issuer webhook`` and the operator API's
    ``/v1/issuing/webhook_endpoints``): add, list, show, enable, disable, remove,
    rotate the secret; and the secrets that sign an endpoint's deliveries now
    (:meth:`signing_secrets`). With ``acting``, each change is audited in its
    transaction (:mod:`issuer.domain.audit`), never with a secret."""

    def __init__(self, ledger: Ledger, keys: KeyStore, acting: Acting | None = None) -> None:
        self.ledger = ledger
        self.keys = keys
        self.acting = acting
        self._opened: dict[bytes, str] = {}

    def _audit(self, uow: UnitOfWork, action: str, endpoint_id: str, **details: object) -> None:
        if self.acting is not None:
            self.acting.record(uow, action, "webhook_endpoint", endpoint_id, details)

    def add(
        self,
        url: str,
        events: Iterable[str],
        *,
        description: str = "",
        terminal_id: str | None = None,
        ca_file: str | Path | None = None,
        dev_plain_http: bool = False,
    ) -> tuple[WebhookEndpoint, str]:
        """A new enabled endpoint and its secret (shown once: only its sealed copy is
        kept). ``terminal_id``: only that terminal's authorisation and refund events
        (a merchant's notification); ``ca_file``: the CA (PEM) that verifies the
        endpoint's TLS certificate."""
        url = check_url(url, dev_plain_http=dev_plain_http)
        chosen = _events(events)
        description = str(description).strip()
        if len(description) > _DESCRIPTION:
            raise ValidationError(f"a description is at most {_DESCRIPTION} characters")
        ca_text = None
        if ca_file is not None:
            if not url.startswith("https://"):
                raise ValidationError("a CA file is for an https:// endpoint")
            ca_path = Path(ca_file).resolve()
            try:
                client_context(ca_path)
            except PkiError as exc:
                raise ValidationError(f"the CA file does not load: {exc}") from None
            ca_text = str(ca_path)
        endpoint = WebhookEndpoint(
            new_id("we"), url, chosen, EndpointStatus.ENABLED, utc_now(), description,
            terminal_id, ca_text,
        )  # fmt: skip
        secret = new_secret()
        with self.ledger.unit_of_work() as uow:
            if terminal_id is not None:
                uow.terminals.get(terminal_id)
            uow.webhooks.add(endpoint, self.keys.seal(secret.encode(), _aad(endpoint.id)))
            self._audit(
                uow, "webhook_endpoint.create", endpoint.id, host=urlsplit(url).hostname,
                events=list(chosen),
                terminal=terminal_id,
            )  # fmt: skip
            uow.commit()
        return endpoint, secret

    def list(self) -> list[WebhookEndpoint]:
        """Every endpoint, oldest first."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.webhooks.list()

    def page(
        self, *, limit: int = 10, starting_after: str | None = None
    ) -> tuple[builtins.list[WebhookEndpoint], bool]:
        """A page of endpoints, newest first, after the endpoint ``starting_after``
        (:class:`NotFoundError` if there is none such), and whether more follow (the
        operator API's cursor pagination; endpoints are few, so the page is cut from
        :meth:`list`)."""
        if not 1 <= limit <= 1000:
            raise ValidationError("a limit is 1 to 1000")
        found = self.list()[::-1]
        if starting_after is not None:
            at = next((n for n, e in enumerate(found) if e.id == starting_after), None)
            if at is None:
                raise NotFoundError(f"no webhook endpoint {starting_after}")
            found = found[at + 1 :]
        return found[:limit], len(found) > limit

    def get(self, endpoint_id: str) -> WebhookEndpoint:
        """One endpoint."""
        with self.ledger.unit_of_work(write=False) as uow:
            return uow.webhooks.get(endpoint_id)

    def _set_status(self, endpoint_id: str, status: EndpointStatus) -> WebhookEndpoint:
        with self.ledger.unit_of_work() as uow:
            if uow.webhooks.get(endpoint_id).status is status:
                raise InvalidStateError(f"webhook endpoint {endpoint_id} is {status.value} already")
            uow.webhooks.set_status(endpoint_id, status)
            endpoint = uow.webhooks.get(endpoint_id)
            self._audit(uow, _STATUS_ACTIONS[status], endpoint_id)
            uow.commit()
        return endpoint

    def enable(self, endpoint_id: str) -> WebhookEndpoint:
        """Deliver to an endpoint again: its pending deliveries go on, and the events
        from now on are delivered (those of the disabled time are not)."""
        return self._set_status(endpoint_id, EndpointStatus.ENABLED)

    def disable(self, endpoint_id: str) -> WebhookEndpoint:
        """Stop delivering to an endpoint (its pending deliveries wait)."""
        return self._set_status(endpoint_id, EndpointStatus.DISABLED)

    def remove(self, endpoint_id: str) -> None:
        """Delete an endpoint and its deliveries (the events stay)."""
        with self.ledger.unit_of_work() as uow:
            uow.webhooks.remove(endpoint_id)
            self._audit(uow, "webhook_endpoint.remove", endpoint_id)
            uow.commit()

    def rotate_secret(
        self, endpoint_id: str, grace: timedelta = timedelta(hours=24)
    ) -> tuple[WebhookEndpoint, str]:
        """A new secret (shown once). The old one goes on signing too, beside the new,
        for ``grace`` (0: stops now; at most :data:`MAX_GRACE`), so that receivers
        switch without losing a delivery."""
        if not timedelta(0) <= grace <= MAX_GRACE:
            raise ValidationError(f"a grace period is 0 to {MAX_GRACE.days} days")
        secret = new_secret()
        with self.ledger.unit_of_work() as uow:
            uow.webhooks.get(endpoint_id)
            sealed = self.keys.seal(secret.encode(), _aad(endpoint_id))
            uow.webhooks.rotate(endpoint_id, sealed, utc_in(int(grace.total_seconds())))
            endpoint = uow.webhooks.get(endpoint_id)
            self._audit(
                uow, "webhook_endpoint.rotate_secret", endpoint_id,
                grace_seconds=int(grace.total_seconds()),
            )  # fmt: skip
            uow.commit()
        return endpoint, secret

    def signing_secrets(
        self, endpoint_id: str, sealed: tuple[bytes, bytes | None, str | None], now: str
    ) -> builtins.list[str]:
        """The secrets that sign a delivery at ``now``: the current one, and the
        previous one until its grace period ends. Opened secrets are kept in memory
        (an HSM call per delivery would cost)."""
        current, previous, until = sealed
        out = [self._open(endpoint_id, current)]
        if previous is not None and until is not None and now < until:
            out.append(self._open(endpoint_id, previous))
        return out

    def _open(self, endpoint_id: str, blob: bytes) -> str:
        found = self._opened.get(blob)
        if found is None:
            if len(self._opened) > 10_000:
                self._opened.clear()
            found = self._opened[blob] = self.keys.unseal(blob, _aad(endpoint_id)).decode()
        return found
