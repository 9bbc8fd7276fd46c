"""An issuer home made in process and served by ``issuer serve`` processes, for the tests
that kill and restart the service under load (tests/e2e/test_issuer_service.py) and that
change a running service's data with the CLI (tests/issuer/test_cache.py).

:class:`IssuerHome` holds an account, terminals and Visa cards (their AC master keys and
track 2); :func:`arqc_request` is a field 55 of one of those cards for an ATC;
:func:`stop_service` ends a served process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from datetime import date
from pathlib import Path

from emvwire.crypto.cryptogram import CryptogramData, generate_arqc
from emvwire.tls import SERVER_CA, ClientTls
from emvwire.tlv import encode
from hostlink import HostClient
from issuer.bootstrap import IssuerApp, init_issuer, open_issuer
from issuer.keys.base import MasterKeyRef
from issuer.model.entities import Terminal
from issuer.pki import TLS_DIR, add_terminal, tls_folder
from tests.support.e2e import BIN

__all__ = ["PASS", "IssuerHome", "arqc_request", "stop_service"]

#: The key store passphrase of these homes.
PASS = "service test passphrase"


#: An issuer application data per Visa CVN: format 0/1 for CVN 18 (its CVR at offset
#: 3), format 2 (32 bytes, the CVR at offset 3 on 5) for CVN 22, the default ranges'
#: token CVN.
_VISA_IAD = {
    18: bytes.fromhex("06011203a00000"),
    22: bytes.fromhex("1f220100") + bytes(28),
}


def arqc_request(mk: bytes, atc: int, amount: int, cvn: int = 18) -> bytes:
    """A field 55 blob of a Visa CVN 18 (or 22) card (EMV Book 2 §8.1.1 data, ARQC
    over it)."""
    raw = {
        0x9F02: bytes.fromhex(f"{amount:012d}"), 0x9F03: bytes(6),
        0x9F1A: b"\x02\x50", 0x95: bytes(5), 0x5F2A: b"\x09\x78",
        0x9A: bytes.fromhex(date.today().strftime("%y%m%d")), 0x9C: b"\x00",
        0x9F37: os.urandom(4), 0x82: b"\x20\x00", 0x9F36: atc.to_bytes(2, "big"),
        0x9F10: _VISA_IAD[cvn],
    }  # fmt: skip
    data = CryptogramData(
        tag_9f02=raw[0x9F02], tag_9f03=raw[0x9F03], tag_9f1a=raw[0x9F1A], tag_95=raw[0x95],
        tag_5f2a=raw[0x5F2A], tag_9a=raw[0x9A], tag_9c=raw[0x9C], tag_9f37=raw[0x9F37],
        tag_82=raw[0x82], tag_9f36=raw[0x9F36], tag_9f10=raw[0x9F10],
    )  # fmt: skip
    out = encode(0x9F26, generate_arqc(cvn, mk, data)) + encode(0x9F27, b"\x80")
    return out + b"".join(encode(t, v) for t, v in raw.items())


class IssuerHome:
    """An issuer home with one account, terminals (each with its TLS client certificate,
    written under ``home/terminals``) and Visa cards."""

    def __init__(self, home: Path, db: str | None, terminals: int, cards: int) -> None:
        self.home, self.db = home, db
        app = init_issuer(home, db_url=db, passphrase=PASS, kdf_cost=10)
        s = app.service
        self.account = s.create_account("Load Holder").id
        s.credit_account(self.account, 10**9)
        folder = tls_folder(home, app.keys)
        #: (terminal, credential, client TLS) of each terminal.
        self.terminals: list[tuple[Terminal, str, ClientTls]] = []
        for i in range(terminals):
            terminal, key, issued = add_terminal(s, folder, f"Shop {i}", "5411")
            files = issued.write(home / "terminals", terminal.id)
            tls = ClientTls(home / TLS_DIR / SERVER_CA, Path(files["cert_file"]),
                            Path(files["key_file"]))  # fmt: skip
            self.terminals.append((terminal, key, tls))
        self.cards: list[tuple[bytes, bytes]] = []  # (AC master key, track 2)
        for _ in range(cards):
            issued = s.issue_card(self.account, "visa")
            card = issued.card
            mk = app.keys.derive_icc_mk(
                MasterKeyRef("visa", card.bin, card.cvn, "ac"), issued.pan, card.psn
            )
            text = f"{issued.pan}D{card.expiry:%y%m}201000000000"
            self.cards.append((mk, bytes.fromhex(text + "F" * (len(text) % 2))))
        app.close()

    def open(self) -> IssuerApp:
        return open_issuer(self.home, db_url=self.db, passphrase=PASS)

    def serve(
        self, *options: str, workers: int = 1, bind: str = "127.0.0.1:0"
    ) -> tuple[subprocess.Popen[str], str]:
        """``issuer serve`` of this home, with mutual TLS (and ``options``): the process
        and its URL."""
        return self._start("serve", "--bind", bind, "--workers", str(workers), *options)

    def console(
        self, *options: str, bind: str = "127.0.0.1:0"
    ) -> tuple[subprocess.Popen[str], str]:
        """``issuer console`` of this home over HTTPS (and ``options``): the process and
        its URL."""
        return self._start("console", "--bind", bind, *options)

    def _start(self, *args: str) -> tuple[subprocess.Popen[str], str]:
        """A command of this home that prints its URL on standard error when ready."""
        env = {**os.environ, "TAPSTACK_ISSUER_HOME": str(self.home),
               "TAPSTACK_KEYSTORE_KEY": PASS}  # fmt: skip
        cmd = [str(BIN / "issuer"), *args]
        if self.db:
            cmd += ["--db", self.db]
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"https?://[\d.]+:\d+", line)
        if match is None:
            stop_service(proc)
            raise AssertionError(f"the service did not start: {line}")
        return proc, match.group(0)

    def client(self, url: str, index: int, **options: float) -> HostClient:
        terminal, key, tls = self.terminals[index]
        return HostClient(url, terminal.id, key, tls=tls, **options)  # type: ignore[arg-type]


def stop_service(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=20)
    if proc.stderr is not None:
        proc.stderr.close()
