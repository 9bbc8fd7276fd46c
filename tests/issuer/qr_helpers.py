"""Helpers of the issuer's QR payment tests: a :class:`QrWorld` (an account in funds, a
shop terminal with a city, a phone token on its wallet, a registered phone wallet),
and the requests of the terminal and of the wallet through the service's ASGI
application with no socket."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from card.emv import EmvCard
from card.wallet import Wallet
from emvwire.currency import Currency, currency_by_code
from emvwire.oda import SigningKey
from emvwire.qr.cpm import ConsumerPresentedCode
from issuer.bootstrap import IssuerApp
from issuer.personalisation import provision
from issuer.service import Api, ServiceApp
from tests.issuer.helpers import edit
from tests.support.asgi import Call, call, call_many


@dataclass
class QrWorld:
    app: IssuerApp
    api: Api
    http: ServiceApp
    account: str
    terminal: str
    terminal_auth: str
    wallet_id: str
    wallet_auth: str
    token_id: str
    phone: EmvCard

    def wallet(self, clock: datetime | None = None) -> Wallet:
        """The phone's wallet (its clock now, or fixed at ``clock``)."""
        if clock is None:
            return Wallet(self.phone)
        return Wallet(self.phone, clock=lambda: clock)

    def scan(self, amount: int | None, key: str, code: str) -> dict[str, Any]:
        """The till's authorisation of a consumer-presented code's text for a sale of
        ``amount`` (None: the code's), as the retail till sends it."""
        decoded = ConsumerPresentedCode.decode(code)
        body: dict[str, Any] = {
            "icc_data": decoded.icc_data().hex(),
            "track2": (decoded.track2() or b"").hex(),
            "channel": "qr_cpm",
        }
        if amount is not None:
            body["amount"] = amount
        status, answer = self.post("/v1/authorisations", body, key)
        assert status == 200, answer
        return dict(answer)

    def request(
        self, method: str, path: str, auth: str, body: Any = None, key: str | None = None
    ) -> tuple[int, Any]:
        headers = {"authorization": auth}
        if key is not None:
            headers["idempotency-key"] = key
        raw = b"" if body is None else json.dumps(body).encode()
        answer = call(self.http, method, path, headers, raw)
        return answer.status, json.loads(answer.body)

    def post(self, path: str, body: Any, key: str) -> tuple[int, Any]:
        """A terminal's POST."""
        return self.request("POST", path, self.terminal_auth, body, key)

    def get(self, path: str) -> tuple[int, Any]:
        """A terminal's GET."""
        return self.request("GET", path, self.terminal_auth)

    def open_sale(self, bill: str, amount: int, expires_in: int = 120) -> dict[str, Any]:
        status, sale = self.post(
            "/v1/qr/sales", {"bill": bill, "amount": amount, "expires_in": expires_in}, f"s-{bill}"
        )
        assert status == 201, sale
        return dict(sale)

    def pay(self, payload: str, amount: int, key: str, **changes: bytes) -> tuple[int, Any]:
        """The wallet pays the merchant code ``payload`` for ``amount``; ``changes``
        replace data objects of its field 55 (``t9F26=...``)."""
        icc, track2 = self.wallet().payment(amount, _eur(), "FR")
        if changes:
            icc = edit(icc, **changes)
        body = {"payload": payload, "icc_data": icc.hex(), "track2": track2.hex()}
        return self.request("POST", "/v1/qr/payments", self.wallet_auth, body, key)

    def pay_and_wait(self, payload: str, amount: int, bill: str, key: str) -> list[Any]:
        """A long poll of sale ``bill`` and the wallet's payment of it, sent together in
        one event loop: both answers (the poll's first)."""
        icc, track2 = self.wallet().payment(amount, _eur(), "FR")
        body = json.dumps(
            {"payload": payload, "icc_data": icc.hex(), "track2": track2.hex()}
        ).encode()
        poll = Call("GET", f"/v1/qr/sales/{bill}?wait=20", {"authorization": self.terminal_auth})
        headers = {"authorization": self.wallet_auth, "idempotency-key": key}
        answers = call_many(self.http, [poll, Call("POST", "/v1/qr/payments", headers, body)])
        return [json.loads(a.body) for a in answers]


def _eur() -> Currency:
    return currency_by_code("EUR")


def make_qr_world(app: IssuerApp, rsa: dict[str, SigningKey], scheme: str = "visa") -> QrWorld:
    """A world of QR payments on ``app`` (module docstring)."""
    s = app.service
    account = s.create_account("Grace Hopper")
    s.credit_account(account.id, 10_000)
    terminal, credential = s.add_terminal("Corner shop", "5411", city="Paris", currency="EUR")
    made = provision(s, account.id, scheme, "phone", icc_key=rsa[f"icc/{scheme}"])
    assert made.token is not None
    api = Api(app)
    wallet, key = api.qr.payments.add_wallet("Grace's phone")
    return QrWorld(
        app=app,
        api=api,
        http=ServiceApp(api),
        account=account.id,
        terminal=terminal.id,
        terminal_auth=f"Bearer {terminal.id}:{credential}",
        wallet_id=wallet.id,
        wallet_auth=f"Bearer {wallet.id}:{key}",
        token_id=made.token.id,
        phone=EmvCard(made.profile),
    )
