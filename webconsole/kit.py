"""The web console kit: what the issuer's and the back office's consoles share, on
Starlette, server-rendered with Jinja2.

A console makes one :class:`Console` and builds its application with
:meth:`Console.app` from its own routes, each endpoint wrapped by
:meth:`Console.view`, which:

- reads the signed session cookie (:mod:`webconsole.sessions`; ``__Host-`` prefixed,
  ``HttpOnly; Secure; SameSite=Strict; Path=/``, RFC 6265bis §4.1.3) and loads its
  subject with the console's ``load`` on every request (a revoked operator is out at
  its next click); no session: a page redirects to ``/sign-in``, a live fragment
  answers 401;
- checks the scope the view needs (else 403, and the console's ``refused`` hook
  writes it down);
- on a POST, parses the form (``application/x-www-form-urlencoded``, at most
  :data:`MAX_FORM` bytes) and refuses with 403 a form whose CSRF token is not the
  session's (OWASP CSRF Prevention Cheat Sheet, synchronizer token pattern).

Signing in (``GET``/``POST /sign-in``) asks for an identity and a credential and
checks them with the console's ``authenticate`` (slow by design, e.g. Argon2id: run
in a worker thread); signing out is a POST. Actions ask first: a view answers a form
without ``confirm=yes`` with :meth:`Console.confirm` (a page naming what will happen,
with the form that does it), and after doing it redirects with :meth:`Console.done`,
whose notice is signed so that no link can make the console say something.

Every page is rendered by :meth:`Console.page` with the kit's templates
(``kit/base.html``, ``kit/macros.html``...) beside the console's; every value a
template writes passes through ``scrub`` first (Jinja2's ``finalize``): a full PAN
that reached a template by mistake is masked anyway. Every answer carries the
security headers of :data:`SECURITY_HEADERS` (a content security policy that allows
no inline script or style and nothing from elsewhere; the static files are the
kit's, served from memory) and a page with data ``Cache-Control: no-store``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import anyio.to_thread
import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webconsole.sessions import Session, Signer

__all__ = [
    "MAX_FORM",
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "Console",
    "Principal",
    "Signed",
    "live_fragment",
]

#: The session cookie's name: ``__Host-`` binds it to this host, Secure and Path=/.
SESSION_COOKIE: Final = "__Host-console"
#: How long a session lasts without signing in again (seconds).
SESSION_AGE: Final = 8 * 3600
#: How long the notice of a redirect after an action is shown (seconds).
NOTICE_AGE: Final = 60
#: The largest form body accepted (bytes).
MAX_FORM: Final = 16 * 1024
#: The headers of every answer (module docstring).
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "strict-transport-security": "max-age=31536000",
    "cross-origin-opener-policy": "same-origin",
}
_TEMPLATES: Final = Path(__file__).parent / "templates"
_STATIC: Final = Path(__file__).parent / "static"
_STATIC_TYPES: Final = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_LOCAL_PATH: Final = re.compile(r"/(?![/\\])[^\s]*")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is signed in: an id, a name to show and the scopes held (as granted: an
    ``operations`` scope that includes ``read`` lists both)."""

    id: str
    name: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Signed:
    """What a view gets: who is signed in, the session (its CSRF token for the forms
    the page shows) and, on a POST, the form's fields."""

    principal: Principal
    session: Session
    form: Mapping[str, str] = field(default_factory=dict)

    def can(self, scope: str) -> bool:
        """Whether the principal holds ``scope`` (what the page shows)."""
        return scope in self.principal.scopes

    @property
    def confirmed(self) -> bool:
        """Whether the form says ``confirm=yes`` (module docstring: actions ask first)."""
        return self.form.get("confirm") == "yes"


View = Callable[[Request, Signed], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
Authenticate = Callable[[str, str], Principal | None]
Load = Callable[[str], Principal | None]
Refused = Callable[[Principal, str, str], None]


class _Answered(Exception):  # noqa: N818 (an answer, not an error)
    def __init__(self, response: Response) -> None:
        self.response = response


class Console:
    """One console's pages (module docstring).

    ``title``: the console's name, shown in every page; ``nav``: (path, label) of the
    menu, or (path, label, scope) of an entry shown only to who holds ``scope``;
    ``templates``: the console's own template folder (beside the kit's ``kit/...``);
    ``authenticate(identity, credential)``: the principal, or ``None``; ``load(id)``:
    the principal as it is now, ``None`` if gone or revoked; ``scrub``: masks any PAN
    in a text; ``refused(principal, "METHOD /path", scope needed)``: writes a refusal
    down (an audit log); ``identity_label``/``credential_label``: the sign-in form's
    fields; ``signer``: the key of sessions (random per process if not given)."""

    def __init__(
        self,
        *,
        title: str,
        nav: Sequence[tuple[str, str] | tuple[str, str, str]],
        templates: Path,
        authenticate: Authenticate,
        load: Load,
        scrub: Callable[[str], str],
        refused: Refused | None = None,
        identity_label: str = "Operator id",
        credential_label: str = "Credential",
        signer: Signer | None = None,
    ) -> None:
        self.title = title
        self.nav = tuple((item[0], item[1], item[2] if len(item) > 2 else "") for item in nav)
        self.authenticate = authenticate
        self.load = load
        self.refused = refused
        self.labels = (identity_label, credential_label)
        self.signer = signer or Signer()
        self._scrub = scrub
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader([templates, _TEMPLATES]),
            autoescape=True,
            finalize=self._finalize,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            undefined=jinja2.StrictUndefined,
        )
        self._static = {
            p.name: p.read_bytes() for p in _STATIC.iterdir() if p.suffix in _STATIC_TYPES
        }
        digest = hashlib.sha256(b"".join(self._static[n] for n in sorted(self._static)))
        self.templates.globals.update(
            console_title=title, nav=self.nav, static_version=digest.hexdigest()[:12]
        )

    def _finalize(self, value: Any) -> Any:
        """Every value a template writes, masked (module docstring)."""
        if isinstance(value, Markup):
            return Markup(self._scrub(str(value)))  # noqa: S704 (masking adds no markup)
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return self._scrub(str(value))
        return value

    # -- the application -----------------------------------------------------------

    def app(self, routes: Iterable[BaseRoute]) -> ASGIApp:
        """The console's ASGI application: the kit's routes (sign in and out, static
        files) and ``routes``, behind the security headers."""
        kit_routes: list[BaseRoute] = [
            Route("/sign-in", self._sign_in_page, methods=["GET"]),
            Route("/sign-in", self._sign_in, methods=["POST"]),
            Route("/sign-out", self._sign_out, methods=["POST"]),
            Route("/static/{name}", self._static_file, methods=["GET"]),
        ]
        starlette = Starlette(
            routes=[*kit_routes, *routes],
            exception_handlers={HTTPException: self._http_error},
        )
        return _Headers(starlette)

    def view(self, scope: str, *, fragment: bool = False) -> Callable[[View], Endpoint]:
        """Wrap a view needing ``scope`` (module docstring); ``fragment``: a live
        fragment, 401 rather than a redirect when signed out."""

        def wrap(view: View) -> Endpoint:
            @functools.wraps(view)
            async def endpoint(request: Request) -> Response:
                try:
                    signed = await self._signed(request, scope, fragment)
                except _Answered as refusal:
                    return refusal.response
                return await view(request, signed)

            return endpoint

        return wrap

    async def _signed(self, request: Request, scope: str, fragment: bool) -> Signed:
        session = self._session(request)
        principal = None
        if session is not None and session.subject is not None:
            principal = self.load(session.subject)
        if session is None or principal is None:
            if fragment or request.method != "GET":
                raise _Answered(self.error(request, 401, "Signed out: sign in again."))
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise _Answered(
                RedirectResponse(f"/sign-in?{urlencode({'next': target})}", status_code=303)
            )
        signed = Signed(principal, session)
        if request.method == "POST":
            form = await self._form(request, session)
            signed = Signed(principal, session, form)
        if scope not in principal.scopes:
            if self.refused is not None:
                self.refused(principal, f"{request.method} {request.url.path}", scope)
            raise _Answered(
                self.error(request, 403, f"Forbidden: this needs the scope {scope}.", signed)
            )
        return signed

    def _session(self, request: Request) -> Session | None:
        value = request.cookies.get(SESSION_COOKIE)
        if not value:
            return None
        data = self.signer.verify("session", value, SESSION_AGE)
        return None if data is None else Session.from_json(data)

    async def _form(self, request: Request, session: Session) -> dict[str, str]:
        """The POST's fields, its CSRF token checked against ``session`` (else 403)."""
        kind = request.headers.get("content-type", "").partition(";")[0].strip()
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise _Answered(self.error(request, 413, "This form is too large."))
        if kind != "application/x-www-form-urlencoded":
            raise _Answered(self.error(request, 415, "A form is expected."))
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise _Answered(self.error(request, 400, "This form is not UTF-8.")) from None
        if not session.token_matches(form.get("csrf", "")):
            raise _Answered(
                self.error(request, 403, "This form has expired: reload the page and try again.")
            )
        return form

    def _set_session(self, response: Response, session: Session | None) -> None:
        if session is None:
            response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True,
                                   samesite="strict")  # fmt: skip
            return
        response.set_cookie(
            SESSION_COOKIE, self.signer.sign("session", session.to_json()),
            max_age=SESSION_AGE, path="/", secure=True, httponly=True, samesite="strict",
        )  # fmt: skip

    # -- pages -----------------------------------------------------------------------

    def render(self, template: str, **context: Any) -> str:
        """``template`` rendered with ``context`` (masked: module docstring)."""
        return self.templates.get_template(template).render(**context)

    def page(
        self, request: Request, signed: Signed | None, template: str, status: int = 200,
        **context: Any,
    ) -> HTMLResponse:  # fmt: skip
        """A page: ``template`` with ``context``, who is signed in, the session's CSRF
        token and the notice of the redirect that led here, if any; not cached."""
        notice = None
        token = request.query_params.get("notice")
        if token:
            data = self.signer.verify("notice", token, NOTICE_AGE)
            notice = data.get("text") if data else None
        if signed is not None:
            context["csrf"] = signed.session.csrf
        context.setdefault("csrf", "")
        html = self.render(template, request=request, signed=signed, notice=notice, **context)
        return HTMLResponse(html, status, headers={"cache-control": "no-store"})

    def confirm(
        self, request: Request, signed: Signed, *, title: str, message: str, button: str,
        details: Sequence[tuple[str, Any]] = (), cancel: str = "/",
    ) -> HTMLResponse:  # fmt: skip
        """The page asking to confirm the action this request's path does (a POST to
        it with ``confirm=yes``): what it does (``message``, ``details``), its
        ``button``, and a way back (``cancel``)."""
        return self.page(
            request, signed, "kit/confirm.html", title=title, message=message, button=button,
            details=details, action=request.url.path, cancel=cancel,
        )  # fmt: skip

    def done(self, url: str, notice: str) -> RedirectResponse:
        """After an action: a redirect (303) to ``url``, whose page shows ``notice``."""
        token = self.signer.sign("notice", {"text": notice})
        sep = "&" if "?" in url else "?"
        return RedirectResponse(f"{url}{sep}{urlencode({'notice': token})}", status_code=303)

    def error(
        self, request: Request, status: int, message: str, signed: Signed | None = None
    ) -> HTMLResponse:
        """An error page."""
        return self.page(request, signed, "kit/error.html", status, message=message)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        text = {404: "Not found.", 405: "Method not allowed."}.get(exc.status_code, exc.detail)
        return self.error(request, exc.status_code, text)

    # -- signing in and out --------------------------------------------------------------

    def _sign_in_form(
        self, request: Request, session: Session, status: int = 200, failed: bool = False
    ) -> HTMLResponse:
        target = request.query_params.get("next", "/")
        response = self.page(
            request, None, "kit/sign_in.html", status, csrf=session.csrf,
            next=target if _LOCAL_PATH.fullmatch(target) else "/", failed=failed,
            labels=self.labels,
        )  # fmt: skip
        self._set_session(response, session)
        return response

    async def _sign_in_page(self, request: Request) -> Response:
        session = self._session(request) or Session.new()
        return self._sign_in_form(request, session)

    async def _sign_in(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:  # no cookie: the form was not ours, or it expired
            return self._sign_in_form(request, Session.new(), 403, failed=False)
        try:
            form = await self._form(request, session)
        except _Answered as refusal:
            return refusal.response
        identity, credential = form.get("identity", "").strip(), form.get("credential", "")
        principal = None
        if identity and credential:
            principal = await anyio.to_thread.run_sync(self.authenticate, identity, credential)
        if principal is None:
            return self._sign_in_form(request, session, 401, failed=True)
        target = form.get("next", "/")
        response = RedirectResponse(
            target if _LOCAL_PATH.fullmatch(target) else "/", status_code=303
        )
        self._set_session(response, Session.new(principal.id))  # a new token (fixation)
        return response

    async def _sign_out(self, request: Request) -> Response:
        session = self._session(request)
        if session is not None:
            try:
                await self._form(request, session)
            except _Answered as refusal:
                return refusal.response
        response = RedirectResponse("/sign-in", status_code=303)
        self._set_session(response, None)
        return response

    async def _static_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = self._static.get(name)
        if body is None:
            raise HTTPException(404)
        return Response(
            body,
            media_type=_STATIC_TYPES[Path(name).suffix],
            headers={"cache-control": "public, max-age=86400, immutable"},
        )


def live_fragment(html: str, cursor: str | None) -> HTMLResponse:
    """The answer to a live region's poll (``static/live.js``): the new rows' HTML
    (empty: nothing new) and the cursor to send next time (``X-Live-Cursor``)."""
    headers = {"cache-control": "no-store"}
    if cursor:
        headers["x-live-cursor"] = cursor
    return HTMLResponse(html, headers=headers)


class _Headers:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._headers]
            await send(message)

        await self.app(scope, receive, with_headers)
