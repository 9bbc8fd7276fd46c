"""Write the fixture card profiles of fixtures/cards/.

Run: .venv/bin/python scripts/make_fixture_cards.py [NAME ...]

Everything is personalised under published test keys: the issuer master keys of
fixtures/issuer/test-master-keys.json (the AC key is the IMK of pyemv's published
vectors) and the tapstack test CA of fixtures/ca/. ICC master keys derive by option B
(option A for the PANs of 16 digits or fewer) or, for the SM4 cryptogram version, by
:func:`emvwire.crypto.sm.derive_icc_mk_sm4`. Test issuer RSA keys are created
once in fixtures/ca/ and reused, so re-running only renews the ICC RSA keys. The card
of UnionPay's whole SM suite (``unionpay-sm-card``: SM4 cryptograms, SM2 offline data
authentication) is certified by the SM2 test CA A000000333/E8 and a test issuer SM2 key
(``*-sm2-private.hex``: the private key in hex), its ICC SM2 key renewed each run.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

from emvwire.crypto.des import kcv
from emvwire.crypto.kdf import derive_icc_mk_b
from emvwire.crypto.sm import derive_icc_mk_sm4
from emvwire.crypto.sm2 import Sm2PrivateKey
from emvwire.oda import (
    CertificateParts,
    SigningKey,
    issue_issuer_certificate,
    issue_sm2_issuer_certificate,
)
from emvwire.personalise import IssuerCertificate, personalise
from emvwire.profile import IccKeys, TokenInfo

ROOT = Path(__file__).resolve().parents[1]
CA_DIR = ROOT / "fixtures" / "ca"
CARDS = ROOT / "fixtures" / "cards"
MASTER_KEYS = ROOT / "fixtures" / "issuer" / "test-master-keys.json"

#: scheme -> (CA private key file, CA index, issuer key bits, ICC key bits, exponent)
SCHEMES = {
    "visa": ("test-ca-A000000003-F1-private.pem", 0xF1, 1024, 1024, 3),
    "mastercard": ("test-ca-A000000004-99-private.pem", 0x99, 1152, 1024, 65537),
    "amex": ("test-ca-A000000025-E4-private.pem", 0xE4, 1024, 1024, 3),
    "unionpay": ("test-ca-A000000333-E7-private.pem", 0xE7, 1024, 1024, 3),
}

#: The cards' ISO 14443-3 UIDs, per scheme.
UIDS = {"visa": "08A1B2C3", "mastercard": "08C4D5E6", "amex": "08E7F809", "unionpay": "08192A3B"}
#: The cards' own offline limits (minor units, taps), per scheme: none is no offline
#: approval.
LIMITS = {
    "visa": {"offline_amount": 5000, "offline_count": 3},
    "amex": {"offline_amount": 5000, "offline_count": 3},
    "unionpay": {"offline_amount": 5000, "offline_count": 3},
}

CARDS_TO_MAKE = [
    # file, kernel, form, PAN (or token), PSN, CVN, holder, token data
    ("visa-card", "visa", "card", "4761739001010010", "01", 18, "VISA/TEST CARD", None),
    ("visa-phone", "visa", "phone", "4895370000000013", "00", 22, "",
     TokenInfo("40010030273", "V0010013020331234567890123456", "0010")),
    ("mastercard-card", "mastercard", "card", "5413330089601034", "00", 17, "MC/TEST CARD", None),
    ("mastercard-phone", "mastercard", "phone", "5204740000001002", "00", 21, "",
     TokenInfo("50110030273", "M0010013020331234567890123456", "1034")),
    ("amex-card", "amex", "card", "374245455400126", "00", 0xA5, "AMEX/TEST CARD", None),
    # UnionPay: a 19-digit card PAN under TDES (CVN 01), a phone token under SM4 (04).
    ("unionpay-card", "unionpay", "card", "6258000000000000016", "01", 0x01, "UNIONPAY/TEST", None),
    ("unionpay-phone", "unionpay", "phone", "6258010000000013", "00", 0x04, "",
     TokenInfo("60010030273", "U0010013020331234567890123456", "0018")),
    # The whole SM suite: SM4 cryptograms (CVN 04) and SM2 offline data authentication.
    ("unionpay-sm-card", "unionpay", "card", "6258020000000000012", "01", 0x04, "UNIONPAY/SM TEST",
     None),
]  # fmt: skip
#: The fixture cards whose offline data authentication is SM2's (emvwire/oda/sm.py);
#: the phone above keeps the RSA certificates it was made with.
SM2_CARDS = {"unionpay-sm-card"}
#: The SM2 test CA's index under the UnionPay RID, and its private key file.
SM2_CA = (0xE8, "test-ca-A000000333-E8-sm2-private.hex")


def _issuer(scheme: str, pan: str) -> IssuerCertificate:
    ca_file, index, bits, _, exponent = SCHEMES[scheme]
    ca = SigningKey.from_pem((CA_DIR / ca_file).read_bytes())
    path = CA_DIR / f"test-issuer-{scheme}-private.pem"
    if path.exists():
        key = SigningKey.from_pem(path.read_bytes())
    else:
        key = SigningKey.generate(bits, exponent)
        path.write_bytes(key.to_pem())
    # The issuer identifier is the BIN the certificate vouches for (Book 2 §6.3):
    # a token range has its own certificate for the same issuer key.
    parts = issue_issuer_certificate(
        ca, key.public, issuer_identifier=pan[:6], expiry=date(2040, 12, 31)
    )
    return IssuerCertificate(key, index, parts)


def _sm2_key(name: str) -> Sm2PrivateKey:
    return Sm2PrivateKey.from_bytes(bytes.fromhex((CA_DIR / name).read_text().strip()))


def _sm2_issuer(pan: str) -> IssuerCertificate:
    index, ca_file = SM2_CA
    path = CA_DIR / "test-issuer-unionpay-sm2-private.hex"
    if not path.exists():
        path.write_text(Sm2PrivateKey.generate().to_bytes().hex().upper() + "\n")
    key = _sm2_key(path.name)
    certificate = issue_sm2_issuer_certificate(
        _sm2_key(ca_file), key.public, issuer_identifier=pan[:6], expiry=date(2040, 12, 31)
    )
    return IssuerCertificate(key, index, CertificateParts(certificate, b"", b""))


def main(only: list[str]) -> None:
    """Write every fixture card, or only those named on the command line."""
    master = json.loads(MASTER_KEYS.read_text())
    CARDS.mkdir(parents=True, exist_ok=True)
    for file, kernel, form, pan, psn, cvn, holder, token in CARDS_TO_MAKE:
        if only and file not in only:
            continue
        imks = master["schemes"][kernel]
        derive = derive_icc_mk_sm4 if cvn == 0x04 else derive_icc_mk_b
        keys = IccKeys(*(derive(bytes.fromhex(imks[k]), pan, psn) for k in ("ac", "smi", "smc")))
        bits, exponent = SCHEMES[kernel][3], SCHEMES[kernel][4]
        sm2 = file in SM2_CARDS
        profile = personalise(
            kernel=kernel,  # type: ignore[arg-type]
            form=form,  # type: ignore[arg-type]
            name=file,
            pan=pan,
            psn=psn,
            expiry=date(2030, 12, 31),
            cvn=cvn,
            icc_keys=keys,
            icc_key=Sm2PrivateKey.generate() if sm2 else SigningKey.generate(bits, exponent),
            issuer=_sm2_issuer(pan) if sm2 else _issuer(kernel, pan),
            cardholder=holder,
            token=token,
            uid=bytes.fromhex(UIDS[kernel]),
            limits=LIMITS.get(kernel, {}),
        )
        profile.dump(CARDS / f"{file}.json")
        print(f"{file}: AC key KCV {kcv(keys.ac).hex().upper()}")


if __name__ == "__main__":
    main(sys.argv[1:])
