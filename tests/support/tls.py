"""A private PKI for the TLS tests, made in a folder of the test: a service's TLS
folder (:class:`emvwire.tls.TlsFolder`: its CA and a server certificate for localhost
and 127.0.0.1) and client certificates of its CA, an expired one and one of another
CA, written as files as a terminal or gate keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from emvwire.pki import certificate_pem, issue_client, make_ca, new_key, private_key_pem
from emvwire.tls import SERVER_CA, ClientTls, TlsFolder, plan_folder

__all__ = ["Client", "TestPki"]


@dataclass(frozen=True)
class Client:
    """A client's certificate and key files, and its certificate's PEM."""

    cert: Path
    key: Path
    pem: bytes

    def tls(self, ca: Path | None) -> ClientTls:
        """This client verifying its server with ``ca``."""
        return ClientTls(ca, self.cert, self.key)


class TestPki:
    """A service's TLS folder in ``folder / "service"`` and client files beside it."""

    __test__ = False  # not a test class, for pytest

    def __init__(self, folder: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> None:
        self.folder = folder
        self.service = TlsFolder(folder / "service")
        self.service.create(plan_folder("test service CA", hosts=hosts))

    @property
    def server_ca(self) -> Path:
        """What clients verify the service with."""
        return self.service.file(SERVER_CA)

    def client(
        self, kind: str, ident: str, *, days: int = 30, now: datetime | None = None
    ) -> Client:
        """A client certificate of the service's CA, written as ``NAME.crt``/``.key``
        (``now`` in the past with few ``days``: expired)."""
        issued = self.service.issue_client(kind, ident, days=days, now=now)
        name = f"{kind}-{ident}-{issued.identity.serial[:8]}"
        files = issued.write(self.folder / "clients", name)
        return Client(Path(files["cert_file"]), Path(files["key_file"]), issued.pem)

    def expired(self, kind: str, ident: str) -> Client:
        """A client certificate that ended yesterday."""
        return self.client(kind, ident, days=1, now=datetime.now(UTC) - timedelta(days=2))

    def foreign(self, kind: str, ident: str) -> Client:
        """A client certificate of another CA, naming the same ``ident``."""
        ca, ca_key = make_ca("another CA")
        key = new_key()
        cert = issue_client(ca, ca_key, key.public_key(), kind, ident)
        folder = self.folder / "foreign"
        folder.mkdir(exist_ok=True)
        (folder / f"{ident}.crt").write_bytes(certificate_pem(cert))
        (folder / f"{ident}.key").write_bytes(private_key_pem(key))
        return Client(folder / f"{ident}.crt", folder / f"{ident}.key", certificate_pem(cert))

    def other_ca_file(self) -> Path:
        """A CA file that did not sign the service's certificate."""
        path = self.folder / "other-ca.crt"
        if not path.exists():
            path.write_bytes(certificate_pem(make_ca("unrelated CA")[0]))
        return path
