"""emvwire.pki: the private PKI's certificates (RFC 5280 profile of the module
docstring), certificate requests, who a client certificate names, key files."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from emvwire.pki import (
    CA_DAYS,
    CLIENT_DAYS,
    SERVER_DAYS,
    PkiError,
    certificate_pem,
    check_ca,
    hex_pairs,
    identity_of,
    issue_client,
    issue_server,
    load_csr_key,
    load_private_key,
    make_ca,
    make_csr,
    new_key,
    private_key_pem,
    serial_text,
    subject_urn,
    verify_issued_by,
    write_private,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    return make_ca("test CA", now=NOW)


def _ext(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


def test_a_ca_is_self_signed_p256_for_ten_years(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    cert, key = ca
    assert isinstance(key.curve, ec.SECP256R1)
    assert verify_issued_by(cert, cert)
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = _ext(cert, x509.KeyUsage).value
    assert isinstance(usage, x509.KeyUsage)
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(
        days=CA_DAYS, minutes=5
    )
    assert cert.not_valid_before_utc < NOW < cert.not_valid_after_utc
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"


def test_a_server_certificate_names_its_hosts_for_a_year(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    cert, key = issue_server(*ca, ["localhost", "127.0.0.1", "::1", "Issuer.Example"], now=NOW)
    names = _ext(cert, x509.SubjectAlternativeName).value
    assert isinstance(names, x509.SubjectAlternativeName)
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "issuer.example"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert _ext(cert, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    assert not _ext(cert, x509.BasicConstraints).value.ca  # type: ignore[attr-defined]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(
        days=SERVER_DAYS, minutes=5
    )
    assert verify_issued_by(cert, ca[0])
    assert cert.public_key() == key.public_key()


@pytest.mark.parametrize("hosts", [[], [""], ["bad host!"]])
def test_a_server_certificate_needs_real_host_names(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], hosts: list[str]
) -> None:
    with pytest.raises(PkiError):
        issue_server(*ca, hosts)


def test_a_client_certificate_names_its_terminal_by_cn_and_urn(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    key = new_key()
    cert = issue_client(*ca, key.public_key(), "terminal", "term_abc", now=NOW)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "term_abc"
    names = _ext(cert, x509.SubjectAlternativeName).value
    assert isinstance(names, x509.SubjectAlternativeName)
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:tapstack:terminal:term_abc"
    ]
    assert _ext(cert, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(
        days=CLIENT_DAYS, minutes=5
    )
    identity = identity_of(certificate_pem(cert))
    assert (identity.kind, identity.id) == ("terminal", "term_abc")
    assert (
        identity.serial
        == serial_text(cert)
        == f"{cert.serial_number:X}".zfill(len(identity.serial))
    )
    assert len(identity.serial) % 2 == 0
    assert identity.not_after == cert.not_valid_after_utc


def test_identity_of_takes_the_leaf_of_a_chain_as_text(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    cert = issue_client(*ca, new_key().public_key(), "gate", "G7")
    chain = (certificate_pem(cert) + certificate_pem(ca[0])).decode()
    assert identity_of(chain).id == "G7"
    assert identity_of(chain) is identity_of(certificate_pem(cert))  # parsed once


def _bare(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], *names: x509.GeneralName
) -> bytes:
    key = new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return certificate_pem(builder.sign(ca[1], hashes.SHA256()))


@pytest.mark.parametrize(
    "names",
    [
        (),
        (x509.DNSName("term_1"),),
        (x509.UniformResourceIdentifier("urn:tapstack:card:c1"),),
        (
            x509.UniformResourceIdentifier("urn:tapstack:terminal:a"),
            x509.UniformResourceIdentifier("urn:tapstack:terminal:b"),
        ),
    ],
)
def test_a_certificate_that_names_no_single_client_has_no_identity(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], names: tuple[x509.GeneralName, ...]
) -> None:
    with pytest.raises(PkiError):
        identity_of(_bare(ca, *names))


def test_not_a_certificate_has_no_identity() -> None:
    with pytest.raises(PkiError):
        identity_of("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


@pytest.mark.parametrize(
    ("kind", "ident"), [("card", "c1"), ("terminal", ""), ("gate", "a:b"), ("gate", "x" * 65)]
)
def test_only_terminals_and_gates_with_plain_ids_are_named(kind: str, ident: str) -> None:
    with pytest.raises(PkiError):
        subject_urn(kind, ident)


def test_a_request_gives_its_key_and_never_its_subject(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    key = new_key()
    csr = make_csr(key, "terminal", "term_wanted")
    public = load_csr_key(csr)
    assert public == key.public_key()
    cert = issue_client(*ca, public, "terminal", "term_given")
    assert identity_of(certificate_pem(cert)).id == "term_given"


def test_a_forged_or_foreign_request_is_refused() -> None:
    csr = make_csr(new_key(), "gate", "G1").decode()
    body = "".join(csr.splitlines()[1:-1])
    forged = body[:-12] + ("A" if body[-12] != "A" else "B") + body[-11:]
    pem = f"-----BEGIN CERTIFICATE REQUEST-----\n{forged}\n-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(PkiError, match="signature does not verify"):
        load_csr_key(pem.encode())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "G1")]))
        .sign(rsa_key, hashes.SHA256())
    )
    with pytest.raises(PkiError, match="P-256"):
        load_csr_key(request.public_bytes(Encoding.PEM))
    with pytest.raises(PkiError):
        load_csr_key(b"not a request")


def test_only_a_ca_with_its_own_key_issues(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    leaf, leaf_key = issue_server(*ca, ["localhost"])
    with pytest.raises(PkiError, match="not a CA"):
        check_ca(leaf, leaf_key)
    with pytest.raises(PkiError, match="not the key"):
        issue_client(ca[0], new_key(), new_key().public_key(), "gate", "G1")


def test_keys_are_pkcs8_encrypted_under_a_password_when_given() -> None:
    key = new_key()
    sealed = private_key_pem(key, b"p" * 64)
    assert sealed.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert load_private_key(sealed, b"p" * 64).public_key() == key.public_key()
    with pytest.raises(PkiError):
        load_private_key(sealed, b"wrong")
    assert private_key_pem(key).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_serials_for_people_never_read_as_a_card_number() -> None:
    from emvwire.mask import scrub

    serial = "4761739001010010AB"  # begins with a test card's PAN
    assert scrub(serial) != serial
    assert hex_pairs(serial) == "47:61:73:90:01:01:00:10:AB"
    assert scrub(hex_pairs(serial)) == hex_pairs(serial)


def test_a_key_file_is_0600_and_written_once(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    write_private(path, b"secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_private(path, b"other")
    assert path.read_bytes() == b"secret"
