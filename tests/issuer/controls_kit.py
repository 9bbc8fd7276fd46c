"""What the tests of spending controls, partial approval, increments and the program's
decision endpoint share (tests/issuer/test_controls.py, test_program.py): a
:class:`Shop` (an account in funds, a terminal, Visa cards and tokens whose ARQCs are
computed from their master keys, so that a payment costs no card emulation) that
pays through the service's ASGI application (no socket), and a :class:`Receiver`,
the program's decision endpoint as a real HTTP server in a thread of the test that
checks the issuer's signature itself, from the documented scheme.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from issuer.bootstrap import IssuerApp
from issuer.domain.authorise import AuthorisationRequest
from issuer.keys.base import MasterKeyRef
from issuer.model.entities import Terminal
from issuer.service import Api, ServiceApp
from tests.support.asgi import call
from tests.support.issuer_home import arqc_request

__all__ = ["Payer", "Receiver", "Shop", "expected_signature", "signed"]


@dataclass
class Payer:
    """A card or token of the shop's account: its id, AC master key, track 2, PAN and
    the next ATC to use."""

    id: str
    mk: bytes
    track2: bytes
    pan: str
    cvn: int = 18
    atc: int = 1

    def blob(self, amount: int) -> bytes:
        """A field 55 for ``amount`` with the next ATC."""
        icc = arqc_request(self.mk, self.atc, amount, self.cvn)
        self.atc += 1
        return icc


def _track2(pan: str, expiry: Any) -> bytes:
    text = f"{pan}D{expiry:%y%m}201000000000"
    return bytes.fromhex(text + "F" * (len(text) % 2))


class Shop:
    """An issuer with one funded account and one terminal, paid through its HTTP API."""

    def __init__(
        self, app: IssuerApp, *, funds: int = 100_000, mcc: str = "5411", country: str = "0250"
    ) -> None:
        self.app = app
        s = app.service
        self.account = s.create_account("Grace Hopper").id
        s.credit_account(self.account, funds)
        terminal, credential = s.add_terminal("Corner shop", mcc, country=country)
        self.terminal: Terminal = terminal
        self.auth = f"Bearer {terminal.id}:{credential}"
        self.api = Api(app)
        self.http = ServiceApp(self.api)
        self._keys = 0

    def card(self) -> Payer:
        """A new Visa card of the account."""
        issued = self.app.service.issue_card(self.account, "visa")
        card = issued.card
        mk = self.app.keys.derive_icc_mk(
            MasterKeyRef("visa", card.bin, card.cvn, "ac"), issued.pan, card.psn
        )
        return Payer(card.id, mk, _track2(issued.pan, card.expiry), issued.pan)

    def token(self, card_id: str) -> Payer:
        """A new Visa phone token of a card."""
        issued = self.app.service.issue_token(card_id, requestor_id="40010030273")
        token = issued.token
        mk = self.app.keys.derive_icc_mk(
            MasterKeyRef("visa", token.bin, token.cvn, "ac"), issued.token_pan, token.psn
        )
        track2 = _track2(issued.token_pan, token.expiry)
        return Payer(token.id, mk, track2, issued.token_pan, token.cvn)

    def key(self) -> str:
        self._keys += 1
        return f"key-{self._keys}"

    def body(self, payer: Payer, amount: int, *, partial: bool = False) -> dict[str, Any]:
        """The JSON body of an authorisation request."""
        body: dict[str, Any] = {
            "icc_data": payer.blob(amount).hex(),
            "track2": payer.track2.hex(),
        }
        if partial:
            body["partial_allowed"] = True
        return body

    def post(self, path: str, body: dict[str, Any], key: str | None = None) -> tuple[int, Any]:
        headers = {"authorization": self.auth, "idempotency-key": key or self.key()}
        answer = call(self.http, "POST", path, headers, json.dumps(body).encode())
        return answer.status, json.loads(answer.body)

    def pay(self, payer: Payer, amount: int, *, partial: bool = False) -> dict[str, Any]:
        """Authorise ``amount`` (200 expected): the decision."""
        status, body = self.post("/v1/authorisations", self.body(payer, amount, partial=partial))
        assert status == 200, body
        return dict(body)

    def request(self, payer: Payer, amount: int, *, partial: bool = False) -> AuthorisationRequest:
        """A domain authorisation request (for the authoriser directly)."""
        return AuthorisationRequest(self.key(), payer.blob(amount), payer.track2, partial)

    def increment(
        self, txn: str, amount: int, *, partial: bool = False, key: str | None = None
    ) -> tuple[int, Any]:
        body: dict[str, Any] = {"amount": amount}
        if partial:
            body["partial_allowed"] = True
        return self.post(f"/v1/authorisations/{txn}/increment", body, key)

    def balances(self) -> tuple[int, int]:
        account = self.app.service.account(self.account)
        return account.balance, account.held


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 of ``"<t>.<body>"`` under the secret's text, in hex: the documented
    scheme, written here rather than taken from the product."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed(secret: str, body: bytes) -> str:
    """A ``Tapstack-Signature`` header value over ``body`` now."""
    t = str(int(time.time()))
    return f"t={t},v1={expected_signature(secret, t, body)}"


#: What the receiver's program decides for a request: (status, the answer's JSON or
#: raw bytes, sign it?) or ``None`` to answer nothing (the connection is dropped).
Program = Callable[[dict[str, Any]], tuple[int, Any, bool] | None]


@dataclass
class _Seen:
    """A request the receiver got: its body, whether the issuer's signature checked."""

    body: bytes
    verified: bool
    json: dict[str, Any] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    """A threading HTTP server, behind TLS when given a server ``context``."""

    daemon_threads = True

    def __init__(self, handler: Any, context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.context = context
        #: Connections accepted.
        self.connections = 0

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        if self.context is None:
            super().finish_request(request, client_address)
            return
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


class Receiver:
    """The program's decision endpoint: a real HTTP server on loopback in a thread
    (plain HTTP, which the issuer allows for a loopback endpoint, or HTTPS with a
    server ``context``), answering each POST as ``program`` says, signed with
    ``secret`` (set once the issuer made it)."""

    def __init__(self, program: Program, context: ssl.SSLContext | None = None) -> None:
        self.program = program
        self.secret = ""
        self.seen: list[_Seen] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.seen.append(_Seen(raw, receiver.verify(raw, self.headers)))
                with contextlib.suppress(ValueError):
                    receiver.seen[-1].json = json.loads(raw)
                decided = receiver.program(receiver.seen[-1].json)
                if decided is None:
                    self.close_connection = True
                    return
                status, answer, sign = decided
                body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if sign:
                    self.send_header("Tapstack-Signature", signed(receiver.secret, body))
                self.end_headers()
                self.wfile.write(body)

        self.server = _Server(Handler, context)
        scheme = "https" if context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/decide"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def verify(self, body: bytes, headers: Any) -> bool:
        """The issuer's signature of a request, checked as a program would."""
        header = headers.get("Tapstack-Signature", "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        if "t" not in parts or "v1" not in parts:
            return False
        if abs(time.time() - int(parts["t"])) > 300:
            return False
        return hmac.compare_digest(parts["v1"], expected_signature(self.secret, parts["t"], body))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
