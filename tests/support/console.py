"""A browser's part for the web consoles' tests without a browser: a client that keeps
the session cookie, reads the CSRF token of the page it got last and posts forms, over
:func:`tests.support.asgi.call` (the application in the test's thread)."""

from __future__ import annotations

import http.client
import re
import ssl
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from tests.support.asgi import Answer, call

__all__ = ["ConsoleClient", "HttpsConsole", "csrf_of"]

_CSRF: Final = re.compile(r'name="csrf" value="([^"]*)"')
_COOKIE: Final = re.compile(r"^(__Host-console)=([^;]*)")


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of ``html``."""
    found = _CSRF.search(html)
    assert found, "no form with a CSRF token"
    return found.group(1)


class _Browser:
    """A browser's memory: the session cookie and the CSRF token of the last page."""

    def __init__(self) -> None:
        self.cookie = ""
        self.csrf = ""

    def _keep(self, answer: Answer) -> Answer:
        set_cookie = answer.headers.get("set-cookie", "")
        found = _COOKIE.match(set_cookie)
        if found:
            self.cookie = found.group(2)
        if answer.headers.get("content-type", "").startswith("text/html"):
            found_csrf = _CSRF.search(answer.body.decode())
            if found_csrf:
                self.csrf = found_csrf.group(1)
        return answer


class ConsoleClient(_Browser):
    """Requests to a console's ASGI ``app`` with one browser's cookie."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.cookie:
            headers["cookie"] = f"__Host-console={self.cookie}"
        return headers

    def get(self, target: str) -> Answer:
        """A GET with the cookie."""
        return self._keep(call(self.app, "GET", target, self._headers()))

    def post(
        self, target: str, fields: dict[str, str] | None = None, *, csrf: bool = True
    ) -> Answer:
        """A form POST with the cookie and (unless not ``csrf``) the last page's token."""
        data = dict(fields or {})
        if csrf:
            data.setdefault("csrf", self.csrf)
        body = urlencode(data).encode()
        headers = self._headers({"content-type": "application/x-www-form-urlencoded"})
        return self._keep(call(self.app, "POST", target, headers, body))

    def sign_in(self, identity: str, credential: str) -> Answer:
        """The sign-in page, then its form posted."""
        self.get("/sign-in")
        return self.post("/sign-in", {"identity": identity, "credential": credential})


class HttpsConsole(_Browser):
    """A console served over HTTPS, seen by one browser: one kept connection verifying
    the server with ``ca``, the session cookie and the last page's CSRF token."""

    def __init__(self, url: str, ca: Path) -> None:
        super().__init__()
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 443
        self.context = ssl.create_default_context(cafile=str(ca))
        self.conn = self.connect()

    def connect(self) -> http.client.HTTPSConnection:
        """A new connection (a new TLS handshake)."""
        return http.client.HTTPSConnection(self.host, self.port, timeout=30, context=self.context)

    def request(
        self, method: str, target: str, fields: dict[str, str] | None = None,
        conn: http.client.HTTPSConnection | None = None,
    ) -> Answer:  # fmt: skip
        """One request with the cookie (on ``conn``, else the kept connection); a form
        POST carries the last page's CSRF token."""
        headers = {"cookie": f"__Host-console={self.cookie}"} if self.cookie else {}
        body = None
        if fields is not None:
            body = urlencode({"csrf": self.csrf, **fields})
            headers["content-type"] = "application/x-www-form-urlencoded"
        use = conn or self.conn
        use.request(method, target, body, headers)
        reply = use.getresponse()
        answer = Answer(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
        return self._keep(answer)

    def sign_in(self, identity: str, credential: str) -> Answer:
        """The sign-in page, then its form posted."""
        self.request("GET", "/sign-in")
        return self.request("POST", "/sign-in", {"identity": identity, "credential": credential})

    def close(self) -> None:
        self.conn.close()
