"""Offline data authentication: CA keys, certificates, SDA, DDA, fDDA, CDA (EMV Book 2).

The verifying side (a terminal) uses :class:`CaKeyStore`, :func:`recover_issuer_key`,
:func:`recover_icc_key`, :func:`build_static_data`, :func:`verify_sda`,
:func:`verify_dda`, :func:`verify_fdda` and :func:`verify_cda`; every failure is an
:class:`~emvwire.errors.OdaError` naming the check. UnionPay's SM variant
(SM2 signatures, SM3) is :mod:`emvwire.oda.sm`. The signing side (test CA, issuer,
card emulator) uses :class:`SigningKey`, :func:`issue_issuer_certificate`,
:func:`issue_icc_certificate`, :func:`sign_sda` and the ``sign_*`` functions of
:mod:`emvwire.oda.dynamic`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emvwire.lazy import lazy_names

if TYPE_CHECKING:
    from emvwire.oda.capk import (
        AnyCaKey,
        CaKey,
        CaKeyStore,
        Sm2CaKey,
        parse_key_file,
        parse_terminal_config,
    )
    from emvwire.oda.certificates import (
        CertificateParts,
        IccPublicKey,
        IssuerPublicKey,
        issue_icc_certificate,
        issue_issuer_certificate,
        recover_icc_key,
        recover_issuer_key,
    )
    from emvwire.oda.dynamic import (
        CdaResult,
        DynamicData,
        sign_cda,
        sign_dda,
        sign_dynamic_data,
        sign_fdda,
        transaction_data_hash,
        verify_cda,
        verify_dda,
        verify_fdda,
    )
    from emvwire.oda.rsa import RsaPublicKey, SigningKey
    from emvwire.oda.sda import sign_sda, verify_sda
    from emvwire.oda.sm import (
        Sm2IccKey,
        Sm2IssuerKey,
        issue_sm2_icc_certificate,
        issue_sm2_issuer_certificate,
        recover_sm2_icc_key,
        recover_sm2_issuer_key,
        sign_sm2_fdda,
        verify_sm2_fdda,
    )
    from emvwire.oda.static_data import StaticData, build_static_data, oda_records

#: Each name of the package -> the module that defines it, imported on first use
#: (PEP 562): a terminal loading its CA keys (:mod:`.capk`) does not load the
#: signing and the dynamic authentication it may never run.
_LAZY: dict[str, str] = {
    "AnyCaKey": "capk",
    "CaKey": "capk",
    "Sm2CaKey": "capk",
    "CaKeyStore": "capk",
    "parse_key_file": "capk",
    "parse_terminal_config": "capk",
    "CertificateParts": "certificates",
    "IccPublicKey": "certificates",
    "IssuerPublicKey": "certificates",
    "issue_icc_certificate": "certificates",
    "issue_issuer_certificate": "certificates",
    "recover_icc_key": "certificates",
    "recover_issuer_key": "certificates",
    "CdaResult": "dynamic",
    "DynamicData": "dynamic",
    "sign_cda": "dynamic",
    "sign_dda": "dynamic",
    "sign_dynamic_data": "dynamic",
    "sign_fdda": "dynamic",
    "transaction_data_hash": "dynamic",
    "verify_cda": "dynamic",
    "verify_dda": "dynamic",
    "verify_fdda": "dynamic",
    "RsaPublicKey": "rsa",
    "SigningKey": "rsa",
    "sign_sda": "sda",
    "verify_sda": "sda",
    "Sm2IccKey": "sm",
    "Sm2IssuerKey": "sm",
    "issue_sm2_icc_certificate": "sm",
    "issue_sm2_issuer_certificate": "sm",
    "recover_sm2_icc_key": "sm",
    "recover_sm2_issuer_key": "sm",
    "sign_sm2_fdda": "sm",
    "verify_sm2_fdda": "sm",
    "StaticData": "static_data",
    "build_static_data": "static_data",
    "oda_records": "static_data",
}


__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "AnyCaKey",
    "CaKey",
    "CaKeyStore",
    "CdaResult",
    "CertificateParts",
    "DynamicData",
    "IccPublicKey",
    "IssuerPublicKey",
    "RsaPublicKey",
    "SigningKey",
    "Sm2CaKey",
    "Sm2IccKey",
    "Sm2IssuerKey",
    "StaticData",
    "build_static_data",
    "issue_icc_certificate",
    "issue_issuer_certificate",
    "issue_sm2_icc_certificate",
    "issue_sm2_issuer_certificate",
    "oda_records",
    "parse_key_file",
    "parse_terminal_config",
    "recover_icc_key",
    "recover_issuer_key",
    "recover_sm2_icc_key",
    "recover_sm2_issuer_key",
    "sign_cda",
    "sign_dda",
    "sign_dynamic_data",
    "sign_fdda",
    "sign_sda",
    "sign_sm2_fdda",
    "transaction_data_hash",
    "verify_cda",
    "verify_dda",
    "verify_fdda",
    "verify_sda",
    "verify_sm2_fdda",
]
