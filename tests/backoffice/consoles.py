"""``backoffice console`` as a process for the tests (and the benchmark) that need a
real server: over HTTPS with the home's server certificate, on a free local port."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from backoffice.store import Home
from tests.backoffice.databases import home_args
from tests.support.e2e import BIN, child_env

__all__ = ["serve_console"]

_URL: Final = re.compile(r"https://[\d.]+:\d+")


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
