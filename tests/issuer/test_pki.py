"""Terminal certificates at the issuer, on both ledgers: issued with the terminal in one
transaction, renewed without ending the previous one, revoked with the terminal (or
alone), and the per-request check the service makes of a connection's verified client
certificate (issuer.domain.certificates): it must name the credential's terminal, be
its active record, and a revocation committed by any process is seen from the next
refresh of the cache generation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from emvwire.pki import PkiError, identity_of, make_csr, new_key
from emvwire.tls import TlsFolder, plan_folder
from issuer.bootstrap import IssuerApp
from issuer.domain.certificates import ClientCertificates, certificate_allowed
from issuer.domain.service import IssuerService
from issuer.errors import ConflictError, InvalidStateError, NotFoundError
from issuer.keys.base import KeyStore
from issuer.ledger.repository import Ledger
from issuer.model.entities import CertificateStatus, TerminalCertificate, TerminalStatus
from issuer.pki import (
    CA_NAME,
    add_terminal,
    certificate_record,
    renew_terminal,
    tls_folder,
    tls_password,
)


@pytest.fixture
def folder(issuer: IssuerApp) -> TlsFolder:
    made = tls_folder(issuer.config.home, issuer.keys)
    made.create(plan_folder(CA_NAME))
    return made


def test_the_tls_keys_password_comes_from_the_key_store(keystore: KeyStore) -> None:
    keystore.ensure_data_keys()
    password = tls_password(keystore)
    assert password == tls_password(keystore)
    assert len(password) == 64
    assert password != keystore.pan_hash("4761739001010010").hex().encode()


def test_a_terminal_comes_with_its_certificate(issuer: IssuerApp, folder: TlsFolder) -> None:
    terminal, credential, issued = add_terminal(issuer.service, folder, "Shop", "5411")
    assert credential.startswith("tsk_")
    assert issued.key_pem is not None
    assert (issued.identity.kind, issued.identity.id) == ("terminal", terminal.id)
    (record,) = issuer.service.certificates(terminal.id)
    assert record.serial == issued.identity.serial
    assert record.fingerprint == issued.fingerprint
    assert record.status is CertificateStatus.ACTIVE
    assert record.not_after.startswith(issued.identity.not_after.strftime("%Y-%m-%dT%H:%M:%S"))


def test_a_request_keeps_the_key_with_the_terminal(issuer: IssuerApp, folder: TlsFolder) -> None:
    key = new_key()
    terminal, _, issued = add_terminal(
        issuer.service, folder, "Shop", "5411", csr=make_csr(key, "terminal", "anything")
    )
    assert issued.key_pem is None
    assert issued.certificate.public_key() == key.public_key()
    assert identity_of(issued.pem).id == terminal.id


def test_a_bad_request_adds_no_terminal(issuer: IssuerApp, folder: TlsFolder) -> None:
    before = len(issuer.service.terminals())
    with pytest.raises(PkiError):
        add_terminal(issuer.service, folder, "Shop", "5411", csr=b"not a request")
    assert len(issuer.service.terminals()) == before


def test_a_renewal_leaves_the_previous_certificate_valid(
    issuer: IssuerApp, folder: TlsFolder
) -> None:
    terminal, _, first = add_terminal(issuer.service, folder, "Shop", "5411")
    second = renew_terminal(issuer.service, folder, terminal.id, days=30)
    records = issuer.service.certificates(terminal.id)
    assert [r.serial for r in records] == [first.identity.serial, second.identity.serial]
    assert {r.status for r in records} == {CertificateStatus.ACTIVE}
    check = ClientCertificates(issuer.ledger, issuer.cache)
    assert check.allowed(first.pem, terminal)
    assert check.allowed(second.pem, terminal)
    with pytest.raises(NotFoundError):
        renew_terminal(issuer.service, folder, "term_nobody")


def test_revoking_a_terminal_revokes_its_certificates_and_moves_the_generation(
    issuer: IssuerApp, folder: TlsFolder, other: IssuerService
) -> None:
    terminal, _, first = add_terminal(issuer.service, folder, "Shop", "5411")
    second = renew_terminal(issuer.service, folder, terminal.id)
    check = ClientCertificates(issuer.ledger, issuer.cache)
    generation = issuer.cache.refresh()
    assert check.allowed(first.pem, terminal, generation)  # now cached
    other.revoke_terminal(terminal.id)  # another process, one transaction
    assert {r.status for r in other.certificates(terminal.id)} == {CertificateStatus.REVOKED}
    assert all(r.revoked_at for r in other.certificates(terminal.id))
    moved = issuer.cache.refresh()
    assert moved != generation
    revoked = issuer.service.terminal(terminal.id)
    assert revoked.status is TerminalStatus.REVOKED
    for issued in (first, second):
        assert not check.allowed(issued.pem, revoked, moved)
    with pytest.raises(InvalidStateError):
        renew_terminal(issuer.service, folder, terminal.id)


def test_one_certificate_revoked_alone_is_refused_from_the_next_refresh(
    issuer: IssuerApp, folder: TlsFolder, other: IssuerService
) -> None:
    terminal, _, lost = add_terminal(issuer.service, folder, "Shop", "5411")
    kept = renew_terminal(issuer.service, folder, terminal.id)
    check = ClientCertificates(issuer.ledger, issuer.cache)
    generation = issuer.cache.refresh()
    assert check.allowed(lost.pem, terminal, generation)
    revoked = other.revoke_certificate(terminal.id, lost.identity.serial.lower())
    assert revoked.status is CertificateStatus.REVOKED
    assert check.allowed(lost.pem, terminal, generation)  # this turn's rows, as read
    generation = issuer.cache.refresh()
    assert not check.allowed(lost.pem, terminal, generation)
    assert check.allowed(kept.pem, terminal, generation)
    assert issuer.service.terminal(terminal.id).status is TerminalStatus.ACTIVE
    with pytest.raises(InvalidStateError):
        other.revoke_certificate(terminal.id, lost.identity.serial)
    with pytest.raises(NotFoundError):
        other.revoke_certificate("term_other", kept.identity.serial)


def test_a_certificate_serves_only_its_own_terminal(issuer: IssuerApp, folder: TlsFolder) -> None:
    mine, _, my_cert = add_terminal(issuer.service, folder, "Shop", "5411")
    theirs, _, their_cert = add_terminal(issuer.service, folder, "Cafe", "5814")
    check = ClientCertificates(issuer.ledger, issuer.cache)
    assert check.allowed(my_cert.pem, mine)
    # The other terminal's credential on my connection, and mine on theirs: refused.
    assert not check.allowed(my_cert.pem, theirs)
    assert not check.allowed(their_cert.pem, mine)
    # A gate certificate naming my id, a certificate never recorded, not a certificate.
    assert not check.allowed(folder.issue_client("gate", mine.id).pem, mine)
    assert not check.allowed(folder.issue_client("terminal", mine.id).pem, mine)
    assert not check.allowed("not a certificate", mine)


def test_certificate_allowed_is_the_rule() -> None:
    from emvwire.pki import CertificateIdentity
    from issuer.model.entities import Terminal

    end = datetime(2027, 1, 1, tzinfo=UTC)
    identity = CertificateIdentity("terminal", "term_1", "0A1B", end)
    terminal = Terminal("term_1", "Shop", "5411", "hash", TerminalStatus.ACTIVE, "2026-01-01")
    record = TerminalCertificate(
        "0A1B", "term_1", "ff", "2026-01-01", "2027-01-01", CertificateStatus.ACTIVE, "2026-01-01"
    )
    now = end - timedelta(days=1)
    assert certificate_allowed(identity, terminal, record, now=now)
    assert not certificate_allowed(identity, terminal, record, now=end)  # expired
    assert not certificate_allowed(identity, terminal, None, now=now)  # not recorded
    assert not certificate_allowed(
        identity, terminal, replace(record, status=CertificateStatus.REVOKED), now=now
    )
    assert not certificate_allowed(identity, terminal, replace(record, terminal_id="x"), now=now)
    assert not certificate_allowed(identity, terminal, replace(record, serial="0A1C"), now=now)
    assert not certificate_allowed(
        identity, replace(terminal, status=TerminalStatus.REVOKED), record, now=now
    )
    assert not certificate_allowed(replace(identity, kind="gate"), terminal, record, now=now)
    assert not certificate_allowed(replace(identity, id="term_2"), terminal, record, now=now)


def _record(serial: str, terminal_id: str) -> TerminalCertificate:
    return TerminalCertificate(
        serial, terminal_id, f"fp{serial}", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z",
        CertificateStatus.ACTIVE, "2026-01-01T00:00:00Z",
    )  # fmt: skip


def test_the_certificate_repository(ledger: Ledger) -> None:
    service = IssuerService(ledger, keys=None)  # type: ignore[arg-type]
    terminal, _ = service.add_terminal("Shop", "5411")
    with ledger.unit_of_work() as uow:
        uow.certificates.add(_record("01", terminal.id))
        uow.certificates.add(_record("02", terminal.id))
        uow.commit()
    with pytest.raises(ConflictError), ledger.unit_of_work() as uow:
        uow.certificates.add(_record("01", terminal.id))
    before = ledger.generation()
    with ledger.unit_of_work() as uow:
        assert uow.certificates.get("01") == _record("01", terminal.id)
        assert uow.certificates.get("03") is None
        assert uow.certificates.revoke("01", "2026-06-01T00:00:00Z")
        assert not uow.certificates.revoke("01", "2026-06-01T00:00:00Z")
        assert uow.certificates.revoke_terminal(terminal.id, "2026-06-02T00:00:00Z") == 1
        uow.commit()
    assert ledger.generation() != before
    with ledger.unit_of_work(write=False) as uow:
        listed = uow.certificates.list(terminal.id)
    assert [(c.serial, c.status, c.revoked_at) for c in listed] == [
        ("01", CertificateStatus.REVOKED, "2026-06-01T00:00:00Z"),
        ("02", CertificateStatus.REVOKED, "2026-06-02T00:00:00Z"),
    ]


def test_a_record_of_an_issued_certificate(issuer: IssuerApp, folder: TlsFolder) -> None:
    issued = folder.issue_client("terminal", "term_x")
    record = certificate_record(issued, "term_x")
    assert record.serial == issued.identity.serial
    assert record.not_after.endswith("Z")
    assert record.to_json()["status"] == "active"
