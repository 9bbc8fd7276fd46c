"""The end-to-end harness: real processes as a user runs them, shared by tests/e2e,
tests/terminal and bench/.

- The issuer: :func:`init_issuer` (``issuer init`` in a fresh home on SQLite),
  :func:`issuer_cli` (any ``issuer`` command with ``--json``), the set-up steps
  :func:`new_account`, :func:`add_terminal` (a terminal with its TLS client
  certificate: :class:`TerminalCredentials`), :func:`provision_card`, and
  :func:`serve_issuer` (``issuer serve`` on a free port with mutual TLS, its URL read
  from stderr, stopped on leaving). :class:`IssuerService` is what a test holds of a
  served issuer.
- The vpcd readers of pcscd (machine-wide, TCP 35963/35964): :func:`own_vpcd_reader` (the
  one a test process claims for itself; :func:`own_reader_path` for a terminal),
  :func:`free_vpcd_reader` (that one once empty),
  :func:`require_free_reader`, :func:`wait_until_empty`.
- The card: :class:`ServedCard`, ``card serve PROFILE --via pcsc --reader N`` presenting
  a software card in a vpcd reader (``card/cli.py``: one tap is one presentation).

Imported as ``tests.support.e2e`` (``from tests.support import e2e``): like the rest of
tests/ it is a namespace package found from the repository root, which pytest
(``--import-mode=importlib``, run from the root) and bench scripts put on ``sys.path``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from emvwire.tls import ClientTls
from tests.support.services import missing_service

__all__ = [
    "BIN",
    "CARDS",
    "PASS",
    "ROOT",
    "TERMINAL_SETTINGS",
    "IssuerService",
    "ServedCard",
    "TerminalCredentials",
    "account_balance",
    "add_terminal",
    "assert_no_secrets",
    "card_secrets",
    "child_env",
    "free_vpcd_reader",
    "init_issuer",
    "issuer_cli",
    "new_account",
    "own_reader_path",
    "own_vpcd_reader",
    "provision_card",
    "reader_name",
    "require_free_reader",
    "serve_issuer",
    "unused_url",
    "wait_until_empty",
]

#: The repository, its fixture cards and the virtualenv's commands (issuer, card, terminal).
ROOT = Path(__file__).resolve().parents[2]
CARDS = ROOT / "fixtures" / "cards"
BIN = Path(sys.executable).parent
#: The key store passphrase of the test issuers.
PASS = "e2e passphrase"
#: The variables of a terminal's issuer, TLS and reader settings: a run given
#: ``{name: None for name in TERMINAL_SETTINGS}`` (click's runner) sees none of them.
TERMINAL_SETTINGS = (
    "TAPSTACK_ISSUER_URL",
    "TAPSTACK_TERMINAL_ID",
    "TAPSTACK_TERMINAL_KEY",
    "TAPSTACK_ISSUER_CA",
    "TAPSTACK_TERMINAL_CERT",
    "TAPSTACK_TERMINAL_CERT_KEY",
    "TAPSTACK_DEV_PLAIN_HTTP",
    "TAPSTACK_READER",
)
#: How ``issuer serve`` says where it listens (first line on stderr).
_URL = re.compile(r"https?://[\d.]+:\d+")


def child_env() -> dict[str, str]:
    """This process's environment for a child: the working tree first on the path, output
    unbuffered (a JSON line is there when the line is printed)."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def unused_url() -> str:
    """The URL of a local port nothing listens on (a service that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"https://127.0.0.1:{port}"


def card_secrets(profile: Path) -> list[str]:
    """What must never be printed of a card profile's first application: the full PAN
    and the track 2 image (57, in hex digits with D, and with ``=`` as on a stripe)."""
    app = json.loads(profile.read_text())["applications"][0]
    track2 = app["data"]["57"].upper()
    return [app["pan"], track2, track2.replace("D", "=")]


def assert_no_secrets(texts: Iterable[str], secrets: Iterable[str]) -> None:
    """No text holds any of ``secrets`` (compared in upper case: hex digits)."""
    wanted = list(secrets)
    for text in texts:
        upper = text.upper()
        for secret in wanted:
            assert secret not in upper


# --- the issuer ------------------------------------------------------------------------------


def issuer_cli(env: Mapping[str, str], *args: str, timeout: float = 120) -> Any:
    """``issuer ARGS --json`` with ``env``: its JSON answer (the test fails with its
    stderr on a non-zero exit)."""
    done = subprocess.run(
        [str(BIN / "issuer"), *args, "--json"], env=dict(env), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def init_issuer(home: Path, passphrase: str = PASS) -> dict[str, str]:
    """``issuer init`` of a new home at ``home`` (SQLite: ``TAPSTACK_DB`` unset; a cheap
    key store KDF): the environment for every later ``issuer`` command on it."""
    env = {**os.environ, "TAPSTACK_ISSUER_HOME": str(home), "TAPSTACK_KEYSTORE_KEY": passphrase}
    env.pop("TAPSTACK_DB", None)
    issuer_cli(env, "init", "--kdf-cost", "10")
    return env


def new_account(env: Mapping[str, str], holder: str, credit: str | None = None) -> str:
    """``issuer account create`` for ``holder``, credited ``credit`` (major units, e.g.
    ``"60.00"``) if given: the account id."""
    account: str = issuer_cli(env, "account", "create", "--holder", holder)["id"]
    if credit is not None:
        issuer_cli(env, "account", "credit", account, "--amount", credit)
    return account


@dataclass(frozen=True)
class TerminalCredentials:
    """A terminal registered at the issuer: its id and key, and the files of its TLS
    client certificate with the CA it verifies the issuer with (``issuer terminal add
    --cert-dir``)."""

    id: str
    key: str
    cert_file: str
    key_file: str
    issuer_ca_file: str

    @property
    def tls(self) -> ClientTls:
        """The terminal's side of mutual TLS."""
        return ClientTls(Path(self.issuer_ca_file), Path(self.cert_file), Path(self.key_file))

    def options(self, url: str) -> list[str]:
        """The ``--issuer``, credential and TLS options of a terminal command."""
        return ["--issuer", url, "--terminal-id", self.id, "--terminal-key", self.key,
                "--issuer-ca", self.issuer_ca_file, "--cert", self.cert_file,
                "--cert-key", self.key_file]  # fmt: skip

    def environment(self, url: str) -> dict[str, str]:
        """The same as environment variables."""
        return {"TAPSTACK_ISSUER_URL": url, "TAPSTACK_TERMINAL_ID": self.id,
                "TAPSTACK_TERMINAL_KEY": self.key, "TAPSTACK_ISSUER_CA": self.issuer_ca_file,
                "TAPSTACK_TERMINAL_CERT": self.cert_file,
                "TAPSTACK_TERMINAL_CERT_KEY": self.key_file}  # fmt: skip


def add_terminal(env: Mapping[str, str], merchant: str, mcc: str) -> TerminalCredentials:
    """``issuer terminal add`` with its certificate written under the home's
    ``terminals/``: the terminal's credentials."""
    made = issuer_cli(env, "terminal", "add", "--merchant", merchant, "--mcc", mcc)
    cert = made["certificate"]
    return TerminalCredentials(made["id"], made["credential"], cert["cert_file"],
                               cert["key_file"], cert["issuer_ca_file"])  # fmt: skip


def provision_card(
    env: Mapping[str, str],
    account: str,
    out: Path,
    *options: str,
    scheme: str = "visa",
    form: str = "card",
) -> Any:
    """``issuer card provision`` of a ``scheme`` ``form`` (card or phone) for ``account``,
    the profile written to ``out``; ``options`` as ``--card ID``, ``--allowed-mcc``.
    The command's JSON answer."""
    return issuer_cli(env, "card", "provision", "--account", account, "--scheme", scheme,
                      "--form", form, *options, "--out", str(out))  # fmt: skip


def account_balance(env: Mapping[str, str], account: str) -> tuple[int, int]:
    """``issuer account show``: (balance, held) in minor units."""
    found = issuer_cli(env, "account", "show", account)
    data = found.get("account", found)
    return data["balance"], data["held"]


@contextmanager
def serve_issuer(env: Mapping[str, str], stop_timeout: float = 10) -> Iterator[str]:
    """``issuer serve`` on a free local port for the ``with`` block, with mutual TLS
    (the home's TLS folder): its ``https://`` URL (from the first line it writes to
    stderr). Terminated (SIGTERM) on leaving."""
    server = subprocess.Popen(
        [str(BIN / "issuer"), "serve", "--bind", "127.0.0.1:0"], env=dict(env),
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        match = _URL.search(line)
        assert match, line
        yield match.group(0)
    finally:
        server.terminate()
        server.wait(timeout=stop_timeout)
        if server.stderr is not None:
            server.stderr.close()


@dataclass
class IssuerService:
    """A served issuer home as a test holds it: the ``issuer`` CLI's environment, the
    service's URL and the one terminal registered for the test."""

    env: dict[str, str]
    url: str
    terminal: TerminalCredentials

    @property
    def terminal_id(self) -> str:
        return self.terminal.id

    @property
    def key(self) -> str:
        return self.terminal.key

    def run(self, *args: str) -> Any:
        """``issuer ARGS --json`` on this home: the JSON answer."""
        return issuer_cli(self.env, *args)

    def account_balance(self, account: str) -> tuple[int, int]:
        """(balance, held) of ``account`` in minor units."""
        return account_balance(self.env, account)


# --- the vpcd readers of pcscd ------------------------------------------------------------------


def reader_name(number: int) -> str:
    """pcscd's name of vpcd reader ``number`` (0: TCP 35963, 1: TCP 35964)."""
    return f"Virtual PCD 00 {number:02d}"


def wait_until_empty(number: int, timeout: float = 5.0) -> bool:
    """Whether pcscd sees vpcd reader ``number`` without a card within ``timeout``
    seconds (it polls about every 400 ms: a card that just left may still be there)."""
    from terminal.readers.pcsc import PcscReader

    deadline = time.monotonic() + timeout
    while True:
        with PcscReader(reader_name(number)) as probe:
            if not probe.card_present():
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def require_free_reader(
    number: int = 1, *, wait: float = 5.0, skip: Callable[[str], NoReturn] = missing_service
) -> str:
    """Skip (fail when the run demands every service; or ``skip`` otherwise) unless pcscd
    lists vpcd reader ``number`` and it holds no other process's card (within ``wait``
    seconds): the reader's name."""
    from terminal.readers.pcsc import list_pcsc_readers

    try:
        names = list_pcsc_readers()
    except Exception as exc:  # no pyscard, no pcscd: several unrelated types
        skip(f"no pcscd with vpcd: {exc}")
    name = reader_name(number)
    if name not in names:
        skip(f"no vpcd reader {number} ({name!r}) in pcscd; readers: {names}")
    if not wait_until_empty(number, wait):
        skip(f"vpcd reader {number} holds another process's card")
    return name


#: The vpcd reader this process claimed (:func:`own_vpcd_reader`), with the descriptor
#: of the lock file that holds the claim until the process ends; or why it claimed none.
_claim: tuple[int, int] | str | None = None


def _lock_reader(number: int) -> int | None:
    """An exclusive lock on vpcd reader ``number`` among test processes (a lock file in
    the temporary folder, freed when the process ends; opened read-only, so that the
    file another user made serves as well): its descriptor, or ``None`` if another test
    process holds it."""
    path = Path(tempfile.gettempdir()) / f"tapstack-vpcd-{number}.lock"
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def own_vpcd_reader(wait: float = 60.0) -> int:
    """The number of the vpcd reader this test process presents its cards in, 1 first (the
    benchmarks use 1), else 0: claimed by the first call for the rest of the process, so
    that the pcscd tests on two pytest-xdist workers (scripts/test) have a reader each.
    Waits up to ``wait`` seconds for a reader no other test process claimed; else skip
    (fail when the run demands every service)."""
    global _claim
    if _claim is None:
        _claim = _claim_reader(wait)
    if isinstance(_claim, str):
        missing_service(_claim)
    return _claim[0]


def _claim_reader(wait: float) -> tuple[int, int] | str:
    """A vpcd reader no other test process claimed (its number and lock), or why none."""
    from terminal.readers.pcsc import list_pcsc_readers

    try:
        names = list_pcsc_readers()
    except Exception as exc:  # no pyscard, no pcscd: several unrelated types
        return f"no pcscd with vpcd: {exc}"
    listed = [n for n in (1, 0) if reader_name(n) in names]
    if not listed:
        return f"no vpcd reader in pcscd; readers: {names}"
    deadline = time.monotonic() + wait
    while True:
        for number in listed:
            fd = _lock_reader(number)
            if fd is not None:
                return number, fd
        if time.monotonic() >= deadline:
            return (
                "every vpcd reader is claimed by another test process (vpcd has two: run"
                " the pcscd tests on two workers at most)"
            )
        time.sleep(0.1)


def own_reader_path() -> str:
    """The terminal's reader path of :func:`own_vpcd_reader` (``pcsc:N``)."""
    return f"pcsc:{own_vpcd_reader()}"


def free_vpcd_reader(wait: float = 5.0) -> int:
    """:func:`own_vpcd_reader`, once it holds no card (a card of a previous test may take
    a pcscd poll to leave; up to ``wait`` seconds); else skip (fail when the run demands
    every service)."""
    number = own_vpcd_reader()
    if not wait_until_empty(number, wait):
        missing_service(f"vpcd reader {number} holds another process's card")
    return number


# --- the card --------------------------------------------------------------------------------


class ServedCard:
    """``card serve PROFILE --via pcsc --reader N --taps T OPTIONS``: a software card
    presented in vpcd reader ``reader`` for ``taps`` taps, as a user runs it.

    ``presenting``: wait until the card says it is presenting and pcscd had time to see
    it (``False``: the caller starts its reader at once and waits for the card there). As a
    context manager: stopped on leaving, then ``settle`` seconds for pcscd to see the
    reader empty before the next presentation. :meth:`finish` waits for the taps to end
    and gives the card's stdout and stderr (``--json``: one JSON line a tap)."""

    def __init__(
        self,
        profile: Path,
        taps: int,
        *options: str,
        reader: int = 1,
        env: Mapping[str, str] | None = None,
        presenting: bool = True,
        settle: float = 0.6,
    ) -> None:
        self.settle = settle
        self.process = subprocess.Popen(
            [str(BIN / "card"), "serve", str(profile), "--via", "pcsc", "--reader", str(reader),
             "--taps", str(taps), *options],
            env=dict(env) if env is not None else child_env(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        #: What the card wrote to stderr before :meth:`finish` (the "presenting" line).
        self.said = ""
        if presenting:
            assert self.process.stderr is not None
            # Byte by byte, unbuffered: finish() reads the rest from the pipe itself.
            fd = self.process.stderr.fileno()
            while (byte := os.read(fd, 1)) and byte != b"\n":
                self.said += byte.decode("latin-1")
            assert "presenting" in self.said, self.said
            self.said += "\n"
            time.sleep(0.3)  # pcscd notices the card

    def __enter__(self) -> ServedCard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        time.sleep(self.settle)

    def next(self) -> None:
        """Wait until the tap ended (the card left) and the card is back in the field."""
        assert self.process.stderr is not None
        while not self.process.stderr.readline().startswith("tap "):
            pass
        time.sleep(0.6)  # pcscd sees the card leave and come back

    def finish(self, timeout: float = 30) -> tuple[str, str]:
        """Wait (up to ``timeout`` seconds) for the card to serve its taps and exit: its
        stdout and stderr. Stopped if it is still running then."""
        try:
            out, err = self.process.communicate(timeout=timeout)
            return out, self.said + err
        finally:
            self.stop()

    def stop(self) -> None:
        """Terminate the card (SIGTERM: it ends the tap under way) and close its pipes."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
