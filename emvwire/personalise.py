"""Personalisation: lay out a Visa, Mastercard, American Express or UnionPay card profile.

Both an issuer (which personalises cards from its own keys) and the tests (which need
cards) build profiles the same way, so the layout lives here, beside the profile
format. The caller brings the secrets: ICC master keys already derived (an HSM
derives them without letting the issuer master keys out), the ICC RSA key, and the
issuer key with its certificate; or, for a UnionPay card of the SM suite, SM2 keys and
SM2-signed certificates (:mod:`emvwire.oda.sm`: no remainders, no exponents, the card
signs fDDA with SM2). What is built:

- Visa (Book C-3, qVSDC): PPSE entry with kernel id 03, a PDOL asking for TTQ, amounts,
  country, TVR, currency, date, type and UN; AIP ``2000`` (DDA, used for fDDA); one
  ODA record with the PAN, expiry and AUC; the issuer and ICC certificates; card
  authentication related data (9F69, version 01) in a record of its own (the card
  fills it per transaction).
- Mastercard (Book C-2, M/Chip): PPSE entry with kernel id 02, no PDOL; AIP ``1981``
  (cardholder verification, terminal risk management, CDA; EMV mode and relay
  resistance), ``1B81`` for a phone (on-device cardholder verification too); records
  with track 2, CDOL1/CDOL2, CVM list, IACs; certificates.
- UnionPay (Book C-7, qUICS): Visa's layout (qUICS shares qVSDC's PDOL, TTQ, CTQ
  and fDDA data) with kernel id 07 and no form factor indicator.
- American Express (Book C-4, Expresspay EMV mode): PPSE entry with kernel id 04, a
  PDOL asking for 9F35 and 9F6E, AIP ``1900`` (cardholder verification, terminal risk
  management, CDA), the records of Mastercard's layout.

Track 2 equivalent data (57) is ``PAN D YYMM service-code discretionary F``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from emvwire.crypto.sm2 import Sm2PrivateKey
from emvwire.errors import EmvWireError
from emvwire.oda import (
    CertificateParts,
    SigningKey,
    build_static_data,
    issue_icc_certificate,
    issue_sm2_icc_certificate,
)
from emvwire.profile import (
    Application,
    CardProfile,
    Counters,
    Form,
    IccKeys,
    IccRsaKey,
    IccSm2Key,
    Kernel,
    ProfileError,
    Record,
    TokenInfo,
)
from emvwire.tags import Tag
from emvwire.tlv import encode

__all__ = [
    "AMEX_CDOL1",
    "AMEX_PDOL",
    "DEFAULT_ATR",
    "MASTERCARD_CDOL1",
    "VISA_PDOL",
    "IssuerCertificate",
    "personalise",
    "track2_equivalent",
]

#: ATR a PC/SC reader synthesises for a contactless ISO 14443-4A card with no
#: historical bytes (PC/SC Part 3 §3.1.3.2.3.1).
DEFAULT_ATR = bytes.fromhex("3B8080010101")
#: The qVSDC PDOL of the public Visa transcripts (fixtures/transcripts/mock-visa-offline.json).
VISA_PDOL = bytes.fromhex("9F66049F02069F03069F1A0295055F2A029A039C019F3704")
#: Mastercard CDOL1, 66 bytes of data, as in fixtures/transcripts/mock-msc-offline.json.
MASTERCARD_CDOL1 = bytes.fromhex(
    "9F02069F03069F1A0295055F2A029A039C019F37049F35019F45029F4C089F34039F21039F7C14"
)
#: The Expresspay PDOL: Terminal Type and Enhanced Contactless Reader Capabilities.
AMEX_PDOL = bytes.fromhex("9F35019F6E04")
#: The Amex card's CDOL1: Book 2 §8.1.1 minimum set, terminal type, CVM results.
AMEX_CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F37049F35019F3403")
#: Mastercard CDOL2 (Book 3 §9.2.1): authorisation response code, TVR, UN.
MASTERCARD_CDOL2 = bytes.fromhex("8A029505 9F3704".replace(" ", ""))

#: The issuer certificate's data objects, in their record (Book 2 §5.1, §6.1).
_ISSUER_CERTIFICATE_TAGS = (
    Tag.CA_PUBLIC_KEY_INDEX,
    Tag.ISSUER_PUBLIC_KEY_CERTIFICATE,
    Tag.ISSUER_PUBLIC_KEY_REMAINDER,
    Tag.ISSUER_PUBLIC_KEY_EXPONENT,
)

_VISA_AID = bytes.fromhex("A0000000031010")
_MASTERCARD_AID = bytes.fromhex("A0000000041010")
#: UnionPay credit (RID A000000333; 010101 debit, 010102 credit).
_UNIONPAY_AID = bytes.fromhex("A000000333010102")
#: American Express (RID A000000025, the public Amex AID).
_AMEX_AID = bytes.fromhex("A00000002501")


@dataclass(frozen=True, slots=True)
class IssuerCertificate:
    """The issuer's key with its certificate from a CA (tags 8F, 90, 92, 9F32): RSA, or
    SM2 (:mod:`emvwire.oda.sm`; ``parts`` then has no remainder and no exponent)."""

    key: SigningKey | Sm2PrivateKey
    ca_index: int
    parts: CertificateParts

    def __repr__(self) -> str:
        return f"IssuerCertificate(CA index {self.ca_index:02X})"


def _bcd(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex(digits)


def _yymmdd(d: date) -> bytes:
    return bytes.fromhex(d.strftime("%y%m%d"))


def track2_equivalent(pan: str, expiry: date, service_code: str = "201") -> bytes:
    """Tag 57 (Book 3 Annex A): PAN, separator D, YYMM, service code, discretionary.

    The discretionary data is zeros: the card's dynamic data goes in its own tags.
    """
    body = f"{pan}D{expiry.strftime('%y%m')}{service_code}0000000000"
    return _bcd(body)


def _common_data(
    pan: str, psn: str, expiry: date, effective: date, holder: str
) -> dict[int, bytes]:
    return {
        Tag.PAN: _bcd(pan),
        Tag.PAN_SEQUENCE_NUMBER: bytes.fromhex(psn),
        Tag.EXPIRATION_DATE: _yymmdd(expiry),
        Tag.EFFECTIVE_DATE: _yymmdd(effective),
        Tag.CARDHOLDER_NAME: (holder or "/").upper().encode("ascii", "replace")[:26],
        Tag.TRACK2_EQUIVALENT: track2_equivalent(pan, expiry),
        Tag.APPLICATION_USAGE_CONTROL: bytes.fromhex(
            "FF00"
        ),  # application usage control: valid everywhere
    }


def personalise(
    *,
    kernel: Kernel,
    form: Form,
    name: str,
    pan: str,
    psn: str,
    expiry: date,
    cvn: int,
    icc_keys: IccKeys,
    icc_key: SigningKey | Sm2PrivateKey,
    issuer: IssuerCertificate,
    effective: date | None = None,
    cardholder: str = "",
    token: TokenInfo | None = None,
    uid: bytes = bytes.fromhex("08A1B2C3"),
    country: str = "0250",
    currency: str = "0978",
    limits: Mapping[str, int] | None = None,
    counters: Counters | None = None,
) -> CardProfile:
    """Build the profile of a one-application card (or phone wallet) of ``kernel``.

    For ``form="phone"`` the PAN is the payment token and ``token`` carries the
    requestor id, PAR and last 4 digits of the funding PAN (9F19, 9F24, 9F25); the
    application declares consumer device CVM (CDCVM) capability. ``icc_key`` and the
    issuer's key are both RSA or both SM2.
    """
    if form == "phone" and token is None:
        raise ProfileError("token", "a phone wallet application needs its token data")
    if kernel not in _LAYOUTS:
        raise ProfileError("kernel", f"unknown kernel {kernel!r}")
    effective = effective or date(expiry.year - 5, expiry.month, 1)
    data = _common_data(pan, psn, expiry, effective, cardholder)
    data[Tag.ISSUER_COUNTRY_CODE] = bytes.fromhex(country)  # issuer country code
    data[Tag.APPLICATION_CURRENCY_CODE] = bytes.fromhex(currency)  # application currency code
    data[Tag.CA_PUBLIC_KEY_INDEX] = bytes((issuer.ca_index,))
    data[Tag.ISSUER_PUBLIC_KEY_CERTIFICATE] = issuer.parts.certificate
    if issuer.parts.exponent:
        data[Tag.ISSUER_PUBLIC_KEY_EXPONENT] = issuer.parts.exponent
    if issuer.parts.remainder:
        data[Tag.ISSUER_PUBLIC_KEY_REMAINDER] = issuer.parts.remainder
    if token is not None:
        data[Tag.TOKEN_REQUESTOR_ID] = _bcd(token.requestor_id)
        data[Tag.PAR] = token.par.encode("ascii")
        data[Tag.LAST4_OF_PAN] = bytes.fromhex(token.pan_last4)
    layout = _LAYOUTS[kernel](form, data)
    # The ICC certificate signs the static data of the ODA records (Book 2 §6.4), so it
    # is made once the layout is known, and stored in the record after the issuer's.
    _certify(layout.records, data, layout.aip, pan, expiry, icc_key, issuer)
    records = list(layout.records)
    cert_sfi = records[-1].sfi
    records.append(
        Record(
            cert_sfi,
            records[-1].number + 1,
            _cert_tags(
                data,
                Tag.ICC_PUBLIC_KEY_CERTIFICATE,
                Tag.ICC_PUBLIC_KEY_EXPONENT,
                Tag.ICC_PUBLIC_KEY_REMAINDER,
            ),
        )
    )
    records.extend(layout.after_certificates)
    if token is not None:
        records.append(Record(layout.token_sfi, 1 + _last_record(records, layout.token_sfi),
                              (Tag.TOKEN_REQUESTOR_ID, Tag.PAR, Tag.LAST4_OF_PAN)))  # fmt: skip
    app = Application(
        aid=layout.aid,
        label=layout.label if form == "card" else f"{layout.label} PHONE",
        kernel=kernel,
        cvn=cvn,
        pan=pan,
        psn=psn,
        data=data,
        records=tuple(records),
        pdol=layout.pdol,
        aip=layout.aip,
        keys=icc_keys,
        priority=1,
        kernel_id=layout.kernel_id,
        rsa=IccRsaKey(icc_key.to_pem()) if isinstance(icc_key, SigningKey) else None,
        sm2=IccSm2Key(icc_key.to_bytes()) if isinstance(icc_key, Sm2PrivateKey) else None,
        token=token,
        cdcvm=form == "phone",
        limits=dict(limits or {}),
        counters=counters or Counters(),
    )
    return CardProfile(name=name, form=form, atr=DEFAULT_ATR, uid=uid, applications=(app,))


@dataclass(frozen=True, slots=True)
class _Layout:
    """What differs between the schemes: identity, AIP, PDOL and record layout.

    ``records`` end with the record holding the issuer certificate; the ICC
    certificate record follows it, then ``after_certificates``.
    """

    aid: bytes
    label: str
    kernel_id: bytes
    aip: bytes
    pdol: bytes
    records: tuple[Record, ...]
    after_certificates: tuple[Record, ...]
    token_sfi: int


def _last_record(records: list[Record], sfi: int) -> int:
    return max((r.number for r in records if r.sfi == sfi), default=0)


def _certify(
    records: tuple[Record, ...],
    data: dict[int, bytes],
    aip: bytes,
    pan: str,
    expiry: date,
    icc_key: SigningKey | Sm2PrivateKey,
    issuer: IssuerCertificate,
) -> None:
    """Sign the ICC key over the static data of the ODA records (Book 2 §6.4), with RSA
    or with SM2 (:mod:`emvwire.oda.sm`)."""
    oda = []
    for rec in records:
        if rec.oda:
            body = b"".join(encode(t, data[t]) for t in rec.tags)
            oda.append((rec.sfi, encode(Tag.RECORD_TEMPLATE, body)))
    static = build_static_data(oda, aip=aip, sda_tag_list=data.get(Tag.SDA_TAG_LIST))
    try:
        if isinstance(icc_key, Sm2PrivateKey) and isinstance(issuer.key, Sm2PrivateKey):
            certificate = issue_sm2_icc_certificate(
                issuer.key, icc_key.public, pan=pan, static_data=static, expiry=expiry
            )
            parts = CertificateParts(certificate, b"", b"")
        elif isinstance(icc_key, SigningKey) and isinstance(issuer.key, SigningKey):
            parts = issue_icc_certificate(
                issuer.key, icc_key.public, pan=pan, static_data=static, expiry=expiry
            )
        else:
            raise ProfileError("icc_key", "the ICC key and the issuer key are RSA or SM2 both")
    except EmvWireError as exc:
        if isinstance(exc, ProfileError):
            raise
        raise ProfileError("rsa", f"cannot certify the ICC key: {exc}") from None
    data[Tag.ICC_PUBLIC_KEY_CERTIFICATE] = parts.certificate
    if parts.exponent:
        data[Tag.ICC_PUBLIC_KEY_EXPONENT] = parts.exponent
    if parts.remainder:
        data[Tag.ICC_PUBLIC_KEY_REMAINDER] = parts.remainder


def _cert_tags(data: Mapping[int, bytes], *tags: int) -> tuple[int, ...]:
    return tuple(t for t in tags if t in data)


def _visa(form: Form, data: dict[int, bytes]) -> _Layout:
    """Visa qVSDC (Book C-3): the quick layout (:func:`_quick`) with the form factor."""
    data[Tag.FORM_FACTOR_INDICATOR] = (
        bytes.fromhex("20700000") if form == "card" else bytes.fromhex("23880000")
    )
    return _quick(data, _VISA_AID, "VISA CREDIT" if form == "card" else "VISA", b"\x03")


def _unionpay(form: Form, data: dict[int, bytes]) -> _Layout:
    """UnionPay QuickPass (qUICS, Book C-7): the quick layout of qVSDC (:func:`_quick`),
    whose TTQ, CTQ and fDDA data objects (9F66, 9F6C, 9F69 version 01) qUICS shares."""
    label = "UNIONPAY CREDIT" if form == "card" else "UNIONPAY"
    return _quick(data, _UNIONPAY_AID, label, b"\x07")


def _quick(data: dict[int, bytes], aid: bytes, label: str, kernel_id: bytes) -> _Layout:
    """A card that decides at GPO (kernels 3 and 7): fDDA data in SFI 2, card
    authentication data in SFI 3."""
    data[Tag.SDA_TAG_LIST] = bytes((Tag.AIP,))
    # 9F69 version 01: 01 | card unpredictable number (4) | CTQ (2); filled per tap.
    data[Tag.CARD_AUTHENTICATION_RELATED_DATA] = bytes.fromhex("01000000000000")
    return _Layout(
        aid=aid,
        label=label,
        kernel_id=kernel_id,
        aip=bytes.fromhex("2000"),
        pdol=VISA_PDOL,
        records=(
            Record(
                2,
                1,
                (
                    Tag.PAN,
                    Tag.EXPIRATION_DATE,
                    Tag.EFFECTIVE_DATE,
                    Tag.PAN_SEQUENCE_NUMBER,
                    Tag.APPLICATION_USAGE_CONTROL,
                    Tag.SDA_TAG_LIST,
                    Tag.ISSUER_COUNTRY_CODE,
                ),
                oda=True,
            ),
            Record(2, 2, _cert_tags(data, *_ISSUER_CERTIFICATE_TAGS)),
        ),
        after_certificates=(Record(3, 1, (Tag.CARD_AUTHENTICATION_RELATED_DATA,)),),
        token_sfi=3,
    )


def _mastercard(form: Form, data: dict[int, bytes]) -> _Layout:
    """Mastercard M/Chip (Book C-2): track 2 in SFI 1, risk data in SFI 2, certificates in 3."""
    data.update(
        {
            Tag.CDOL1: MASTERCARD_CDOL1,
            Tag.CDOL2: MASTERCARD_CDOL2,
            # CVM list (Book 3 §10.5): X = Y = 0; online PIN if the terminal supports
            # it, then signature, then no CVM.
            Tag.CVM_LIST: bytes.fromhex("000000000000000042031E031F03"),
            Tag.CARD_APPLICATION_VERSION: bytes.fromhex("0002"),
            Tag.IAC_DEFAULT: bytes.fromhex("0000000000"),
            Tag.IAC_DENIAL: bytes.fromhex("0000000000"),
            Tag.IAC_ONLINE: bytes.fromhex("0000000000"),
            Tag.SDA_TAG_LIST: bytes((Tag.AIP,)),
            # Relay resistance (Book C-2 §5.3): min and max time to process ERRD and the
            # estimated transmission time of its answer, in 100 us units.
            Tag.MIN_TIME_FOR_PROCESSING_RELAY_RESISTANCE_APDU: bytes.fromhex("0000"),
            Tag.MAX_TIME_FOR_PROCESSING_RELAY_RESISTANCE_APDU: bytes.fromhex("0032"),
            Tag.DEVICE_ESTIMATED_TRANSMISSION_TIME_R_APDU: bytes.fromhex("0012"),
        }
    )
    return _Layout(
        aid=_MASTERCARD_AID,
        label="MASTERCARD",
        kernel_id=b"\x02",
        # Cardholder verification, on-device CVM (phones, Book C-2 AIP byte 1 b2),
        # terminal risk management, CDA; EMV mode; relay resistance.
        aip=bytes.fromhex("1B81" if form == "phone" else "1981"),
        pdol=b"",
        records=_generate_ac_records(data),
        after_certificates=(),
        token_sfi=4,
    )


def _generate_ac_records(data: Mapping[int, bytes]) -> tuple[Record, ...]:
    """The records of a card that answers GENERATE AC (kernels 2 and 4): track 2 in
    SFI 1, risk management data signed for ODA in SFI 2, the issuer certificate in 3."""
    return (
        Record(1, 1, (Tag.TRACK2_EQUIVALENT, Tag.CARDHOLDER_NAME, Tag.PAN_SEQUENCE_NUMBER)),
        Record(
            2,
            1,
            (
                Tag.PAN,
                Tag.EXPIRATION_DATE,
                Tag.EFFECTIVE_DATE,
                Tag.ISSUER_COUNTRY_CODE,
                Tag.APPLICATION_USAGE_CONTROL,
                Tag.CDOL1,
                Tag.CDOL2,
                Tag.CVM_LIST,
                Tag.CARD_APPLICATION_VERSION,
                Tag.IAC_DEFAULT,
                Tag.IAC_DENIAL,
                Tag.IAC_ONLINE,
                Tag.APPLICATION_CURRENCY_CODE,
                Tag.SDA_TAG_LIST,
            ),
            oda=True,
        ),
        Record(3, 1, _cert_tags(data, *_ISSUER_CERTIFICATE_TAGS)),
    )


def _amex(form: Form, data: dict[int, bytes]) -> _Layout:
    """American Express Expresspay (Book C-4), EMV mode with GENERATE AC and CDA.

    The PDOL asks for the Terminal Type (9F35) and the Enhanced Contactless Reader
    Capabilities (9F6E, Book C-4 §4.3.4); the records are laid out as kernel 2's
    (:func:`_generate_ac_records`). The CDOL1 is the Book 2 §8.1.1 minimum set with
    the terminal type and the CVM results (tapstack's choice: the Expresspay card
    personalisation guides are not public).
    """
    data.update(
        {
            Tag.CDOL1: AMEX_CDOL1,
            Tag.CDOL2: MASTERCARD_CDOL2,
            # CVM list (Book 3 §10.5): X = Y = 0; online PIN if the terminal supports
            # it, then signature, then no CVM.
            Tag.CVM_LIST: bytes.fromhex("000000000000000042031E031F03"),
            Tag.CARD_APPLICATION_VERSION: bytes.fromhex("0001"),
            Tag.IAC_DEFAULT: bytes.fromhex("0000000000"),
            Tag.IAC_DENIAL: bytes.fromhex("0000000000"),
            Tag.IAC_ONLINE: bytes.fromhex("0000000000"),
            Tag.SDA_TAG_LIST: bytes((Tag.AIP,)),
        }
    )
    return _Layout(
        aid=_AMEX_AID,
        label="AMERICAN EXPRESS",
        kernel_id=b"\x04",
        # Cardholder verification, terminal risk management, CDA (Book 3 Annex C1).
        aip=bytes.fromhex("1900"),
        pdol=AMEX_PDOL,
        records=_generate_ac_records(data),
        after_certificates=(),
        token_sfi=4,
    )


_LAYOUTS = {"visa": _visa, "mastercard": _mastercard, "amex": _amex, "unionpay": _unionpay}
