"""Test-wide fixtures: access to the real services some tests need.

A test that needs pcscd (with the vpcd virtual reader), SoftHSM or PostgreSQL asks
for the matching fixture. On a user's machine without the service the test is
skipped with the reason; with ``TAPSTACK_REQUIRE_SERVICES=1`` (set by ``.ci/run``)
a missing service is a failure instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRE_SERVICES = os.environ.get("TAPSTACK_REQUIRE_SERVICES", "") not in ("", "0")
PCSCD_SOCKET = Path(os.environ.get("PCSCLITE_CSOCK_NAME", "/run/pcscd/pcscd.comm"))
SOFTHSM_MODULE = Path(os.environ.get("TAPSTACK_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so"))
POSTGRES_ADDR = ("127.0.0.1", 5432)


def _missing(reason: str) -> None:
    """Skip, or fail when CI demands every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pcscd() -> str:
    """The name of the first vpcd virtual reader of a running pcscd."""
    try:
        from smartcard.System import readers
    except ImportError:
        _missing("pyscard is not installed (needs libpcsclite-dev, swig, gcc to build)")
    if not PCSCD_SOCKET.exists():
        _missing(f"pcscd is not running (no socket {PCSCD_SOCKET}); start `pcscd`")
    try:
        names = [str(r) for r in readers()]
    except Exception as exc:  # pyscard raises several unrelated types here
        _missing(f"pcscd did not answer: {exc}")
    virtual = [n for n in names if n.startswith("Virtual PCD")]
    if not virtual:
        _missing(f"no vpcd reader in pcscd (install vsmartcard-vpcd); readers: {names}")
    return virtual[0]


@pytest.fixture
def softhsm(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh SoftHSM token in a private folder: module path, label, user PIN."""
    util = shutil.which("softhsm2-util")
    if util is None or not SOFTHSM_MODULE.exists():
        _missing("SoftHSM is not installed (apt-get install softhsm2)")
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        _missing("python-pkcs11 is not installed")
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
def postgres_url() -> str:
    """A URL of the PostgreSQL server on 127.0.0.1:5432 (trust auth, database test)."""
    try:
        with socket.create_connection(POSTGRES_ADDR, timeout=1):
            pass
    except OSError as exc:
        _missing(f"PostgreSQL is not reachable on {POSTGRES_ADDR[0]}:{POSTGRES_ADDR[1]}: {exc}")
    return os.environ.get("TAPSTACK_TEST_PG", "postgresql://root@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def card_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh state folder for the software cards' counters (card/state.py), per test:
    no test reads or leaves counters in the user's state folder."""
    folder = tmp_path_factory.mktemp("card-state")
    monkeypatch.setenv("TAPSTACK_STATE_DIR", str(folder))
    return folder
