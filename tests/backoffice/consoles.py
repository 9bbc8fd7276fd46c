"""``backoffice console`` as a process for the tests (and the benchmark) that need a
real server: over HTTPS with the home's server certificate, on a free local port; and
a browser's part over one kept-alive HTTPS connection (cookie, CSRF token)."""

from __future__ import annotations

import http.client
import re
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final
from urllib.parse import urlencode, urlsplit

from backoffice.store import Home
from tests.backoffice.databases import home_args
from tests.support.e2e import BIN, child_env

__all__ = ["HttpsBrowser", "serve_console"]

_URL: Final = re.compile(r"https://[\d.]+:\d+")
_CSRF: Final = re.compile(r'name="csrf" value="([^"]*)"')
_COOKIE: Final = re.compile(r"^__Host-console=([^;]*)")


@contextmanager
def serve_console(home: Home) -> Iterator[str]:
    """``backoffice console`` of ``home`` for the ``with`` block: its ``https://`` URL
    (the first line it writes to stderr). Stopped with SIGTERM, which must end it
    cleanly (status 0, no traceback)."""
    server = subprocess.Popen(
        [str(BIN / "backoffice"), *home_args(home), "console", "--bind", "127.0.0.1:0"],
        env=child_env(), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        match = _URL.search(line)
        assert match, line
        yield match.group(0)
        server.terminate()
        assert server.wait(timeout=20) == 0
        assert "Traceback" not in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()


class HttpsBrowser:
    """One browser's requests to a console at ``url`` over one HTTPS connection (the
    server verified with ``ca``, no client certificate), keeping the session cookie and
    the CSRF token of the last page."""

    def __init__(self, url: str, ca: str) -> None:
        parts = urlsplit(url)
        context = ssl.create_default_context(cafile=ca)
        self.conn = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=30, context=context
        )
        self.cookie = ""
        self.csrf = ""

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def request(
        self, method: str, path: str, fields: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        """Status, headers (lower case names) and text of one request (a form POST
        when ``fields`` is given, with the last page's CSRF token)."""
        headers = {"cookie": f"__Host-console={self.cookie}"} if self.cookie else {}
        body = None
        if fields is not None:
            body = urlencode({"csrf": self.csrf, **fields})
            headers["content-type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        answer = self.conn.getresponse()
        text = answer.read().decode()
        got = {k.lower(): v for k, v in answer.getheaders()}
        found = _COOKIE.match(got.get("set-cookie", ""))
        if found:
            self.cookie = found.group(1)
        token = _CSRF.search(text)
        if token:
            self.csrf = token.group(1)
        return answer.status, got, text

    def sign_in(self, operator_id: str, credential: str) -> int:
        """The sign-in page, then its form posted; the status of the POST."""
        self.request("GET", "/sign-in")
        status, _, _ = self.request(
            "POST", "/sign-in", {"identity": operator_id, "credential": credential, "next": "/"}
        )
        return status
