"""Test-wide fixtures: access to the real services some tests need.

A test that needs pcscd (with the vpcd virtual reader), SoftHSM or PostgreSQL asks
for the matching fixture. On a user's machine without the service the test is
skipped with the reason; with ``TAPSTACK_REQUIRE_SERVICES=1`` (set by ``.ci/run``)
a missing service is a failure instead, so CI can never pass by skipping
(tests/support/services.py).

Every test using one of these fixtures, directly or through other fixtures, is marked
``pcsc``, ``postgres``, ``hsm``, ``nats`` or ``browser``
(:func:`pytest_collection_modifyitems`): the fast suite ``-m "not pcsc and not postgres
and not hsm and not nats and not slow and not browser"`` needs no service. A
test that reaches a service another way carries the mark itself: on its ``pytest.param``
when a parameter names the driver or backend (``request.getfixturevalue`` is not in
``item.fixturenames``), on the test when a subprocess it starts talks to the service.

Where each service is looked for, so that a run can make each one unreachable:

- pcscd: the socket ``PCSCLITE_CSOCK_NAME`` (default ``/run/pcscd/pcscd.comm``; pyscard's
  pcsc-lite reads the same variable). Its vpcd driver listens on TCP ports 35963 and
  35964 (card.vpcd); when that socket is missing, a connection to those ports from this
  process fails at once (:func:`_refuse_vpcd_without_pcscd`).
- PostgreSQL: the URL ``TAPSTACK_TEST_PG`` (default
  ``postgresql://root@127.0.0.1:5432/test``).
- NATS with JetStream: the URL ``TAPSTACK_TEST_NATS`` (default
  ``nats://127.0.0.1:4222``: the local server has no TLS; tests use their own stream,
  subject and bucket names, with a random suffix, and delete them after).
- SoftHSM: the module ``TAPSTACK_PKCS11_MODULE`` (default
  ``/usr/lib/softhsm/libsofthsm2.so``).
- Chromium, for the web consoles' browser tests (Playwright drives it; its own browser
  download is never used): ``TAPSTACK_CHROMIUM`` (default ``/usr/bin/chromium``,
  Debian's ``chromium`` package). Those tests are marked ``browser``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, settings

from card.vpcd import VPCD_PORT
from clikit.errors import DEBUG_ENV
from tests.support.services import missing_service

# Property tests assert what holds, never how fast: no per-example deadline and no
# "input generation is slow" health check, which a loaded two-core machine running the
# suite on parallel workers trips on inputs that are merely large (a QR code's text).
settings.register_profile("tapstack", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tapstack")

PCSCD_SOCKET = Path(os.environ.get("PCSCLITE_CSOCK_NAME", "/run/pcscd/pcscd.comm"))
SOFTHSM_MODULE = Path(os.environ.get("TAPSTACK_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so"))
POSTGRES_URL = os.environ.get("TAPSTACK_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
NATS_URL = os.environ.get("TAPSTACK_TEST_NATS", "nats://127.0.0.1:4222")
CHROMIUM = Path(os.environ.get("TAPSTACK_CHROMIUM", "/usr/bin/chromium"))
#: Chromium's switches for a test: no sandbox (CI runs as root), nothing fetched from
#: elsewhere, no first-run work.
CHROMIUM_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
)  # fmt: skip
#: The TCP ports of pcscd's vpcd driver (readers 0 and 1).
VPCD_PORTS = (VPCD_PORT, VPCD_PORT + 1)
#: The fixture that reaches each service, and the mark of every test that uses it.
SERVICE_MARKS = {
    "pcscd": "pcsc",
    "postgres_url": "postgres",
    "softhsm": "hsm",
    "nats_url": "nats",
    "chromium": "browser",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the services its fixtures reach (``item.fixturenames`` is the
    closure: the fixtures of its fixtures too), before ``-m`` selects."""
    for item in items:
        used = getattr(item, "fixturenames", ())
        for fixture, mark in SERVICE_MARKS.items():
            if fixture in used:
                item.add_marker(mark)


def _refuse_vpcd_without_pcscd(event: str, args: tuple[Any, ...]) -> None:
    """An audit hook (PEP 578): with no pcscd socket, a software card must not reach
    vpcd either, which listens inside pcscd on its own TCP ports."""
    if event != "socket.connect":
        return
    address = args[1]
    if isinstance(address, tuple) and len(address) >= 2 and address[1] in VPCD_PORTS:
        raise ConnectionRefusedError(f"pcscd is unreachable in this run: {address}")


if not PCSCD_SOCKET.exists():
    sys.addaudithook(_refuse_vpcd_without_pcscd)


@pytest.fixture(scope="session")
def pcscd() -> str:
    """The name of the first vpcd virtual reader of a running pcscd."""
    try:
        from smartcard.System import readers
    except ImportError:
        missing_service("pyscard is not installed (needs libpcsclite-dev, swig, gcc to build)")
    if not PCSCD_SOCKET.exists():
        missing_service(f"pcscd is not running (no socket {PCSCD_SOCKET}); start `pcscd`")
    try:
        names = [str(r) for r in readers()]
    except Exception as exc:  # pyscard raises several unrelated types here
        missing_service(f"pcscd did not answer: {exc}")
    virtual = [n for n in names if n.startswith("Virtual PCD")]
    if not virtual:
        missing_service(f"no vpcd reader in pcscd (install vsmartcard-vpcd); readers: {names}")
    return virtual[0]


@pytest.fixture
def softhsm(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh SoftHSM token in a private folder: module path, label, user PIN."""
    util = shutil.which("softhsm2-util")
    if util is None or not SOFTHSM_MODULE.exists():
        missing_service("SoftHSM is not installed (apt-get install softhsm2)")
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        missing_service("python-pkcs11 is not installed")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            "tapstack-test",
            "--so-pin",
            "5678",
            "--pin",
            "1234",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield {"module": str(SOFTHSM_MODULE), "label": "tapstack-test", "pin": "1234"}
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The URL of the test NATS server with JetStream (``TAPSTACK_TEST_NATS``), once
    its port answers."""
    where = urlsplit(NATS_URL)
    host, port = where.hostname or "127.0.0.1", where.port or 4222
    try:
        with socket.create_connection((host, port), timeout=1):
            pass
    except OSError as exc:
        missing_service(f"NATS is not reachable on {host}:{port}: {exc}")
    return NATS_URL


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Chromium driven by Playwright (sync API), one per module: a
    ``playwright.sync_api.Browser``. Playwright's sync API keeps an event loop running
    in this thread while it lives, so that ``asyncio.run`` fails here meanwhile: the
    browser's tests run such code in another thread, and the browser ends with its
    module (a session-wide one would break every later test of the worker)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        missing_service(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of the test PostgreSQL server (``TAPSTACK_TEST_PG``; by default
    127.0.0.1:5432, trust auth, database test), once its port answers."""
    where = urlsplit(POSTGRES_URL)
    host, port = where.hostname or "127.0.0.1", where.port or 5432
    try:
        with socket.create_connection((host, port), timeout=1):
            pass
    except OSError as exc:
        missing_service(f"PostgreSQL is not reachable on {host}:{port}: {exc}")
    return POSTGRES_URL


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """``postgres_url`` on a schema of the test's own (libpq's search_path option),
    empty, for processes the test starts (``issuer serve --db``); dropped after."""
    import psycopg

    schema = f"e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(autouse=True)
def _tracebacks_reach_the_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception of a CLI reaches the test with its traceback
    (clikit.errors.DEBUG_ENV), not as the "internal error" line a user sees; a test of
    that line removes the variable."""
    monkeypatch.setenv(DEBUG_ENV, "1")


@pytest.fixture(scope="session", autouse=True)
def card_state_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The software cards' counters (card/state.py) in a folder of the test session:
    no test reads or leaves counters in the user's state folder, and a card that
    several tests of a module serve (each in a process of its own) counts on from one
    test to the next, as it would for a user."""
    folder = tmp_path_factory.mktemp("card-state")
    old = os.environ.get("TAPSTACK_STATE_DIR")
    os.environ["TAPSTACK_STATE_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if old is None:
            os.environ.pop("TAPSTACK_STATE_DIR", None)
        else:
            os.environ["TAPSTACK_STATE_DIR"] = old


@pytest.fixture
def card_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A state folder of this test's own, for a test that looks at what is in it."""
    folder = tmp_path_factory.mktemp("card-state")
    monkeypatch.setenv("TAPSTACK_STATE_DIR", str(folder))
    return folder
