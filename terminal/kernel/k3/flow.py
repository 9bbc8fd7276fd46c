"""Kernel 3: Visa qVSDC (EMV Book C-3), with the defences of the published attacks.

Flow, from the selected application (the entry point has sent SELECT PPSE and SELECT
AID):

1. FCI (Book C-3 §5.2): template 6F with A5 (data after it are ignored); a malformed
   FCI asks for the next application (Select Next). The PDOL (9F38) must ask for the
   TTQ (9F66): a card that does not is not a qVSDC card, and mag-stripe mode (MSD) is
   not supported (Roland and Langer, WOOT 2013: no downgrade to mag-stripe), so it is
   declined.
2. GET PROCESSING OPTIONS (§5.3) with the PDOL data built by Book 3 §5.4 from the
   terminal data, the transaction, the TTQ copy of pre-processing and a fresh
   Unpredictable Number from the context's CSPRNG (Bond et al., S&P 2014). Status
   ``6984`` or ``6986``: Try Another Interface; ``6985``: Select Next; any other not
   9000: End Application.
3. The answer (§5.4) must be template 77 (a format 1 answer ``80`` carries no
   cryptogram: declined, no mag-stripe mode). Each data object at most once (§5.4.2.2),
   of a valid length (:data:`CARD_LENGTHS`); no cryptogram (9F26): declined;
   AIP, ATC, IAD and track 2 equivalent data mandatory (§5.4.2.1): End Application. The
   cryptogram type is 9F27, or, absent, the CVR inside the IAD (§5.4.3.1).
4. READ RECORD of every AFL record, **only when needed**: for an offline approval
   (a TC: fDDA is required) and when the card claims a consumer device CVM on a
   transaction that needs a CVM (the claim must be covered by the signature). An
   online transaction otherwise takes three APDUs (PPSE, SELECT, GPO). A data object
   read twice must have the same value (the PAN in 5A must be the one in 57). An AFL
   past the configuration's bounds (entries, records) ends the application before any
   READ RECORD, records past its byte bound when they do (:mod:`terminal.kernel.bounds`).
5. Restrictions (§5.5): the PAN must belong to the AID's brand (Basin et al., USENIX
   Security 2021, card brand mixup: declined); an expired application with a TC goes
   online if the CTQ asks for it (byte 1 bit 4), else is declined; with an ARQC the TVR
   says so and the issuer decides. A TC although pre-processing required an online
   cryptogram goes online (§5.4.3.2).
6. fDDA (§5.6, Book 2 §6.5 with Visa's 9F37 || 9F02 || 5F2A || 9F69 tail): CA key by RID
   and 8F, issuer and ICC keys recovered, static data from the ODA records (with the AIP
   when 9F4A names it), the SDAD 9F4B checked against the UN, amount and currency sent.
   For a TC that fails: online if the CTQ says "go online if ODA fails" and the reader
   is online capable; Try Another Interface if it says "switch interface"; else
   declined. A verified signature whose 9F69 holds a CTQ other than the card's 9F6C
   means the CTQ was changed on the way: declined.
7. CVM (§5.7) by :func:`terminal.kernel.k3.rules.visa_cvm` (consumer device CVM trusted
   only under a verified signature, Basin, Sasse, Toro-Pozo, S&P 2021).
8. Outcome: AAC declined; ARQC (or online forced) Online Request, unless the reader
   is offline-only; TC with fDDA passed Approved.

Every answer of the card, however malformed, ends in one of these outcomes with a
reason; reader errors (card pulled away) go up to the entry point (Try Again).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import ClassVar, Final

from emvwire import dol, tlv
from emvwire.apdu import (
    AAC,
    AC_NAMES,
    ARQC,
    TC,
    ApduError,
    get_processing_options,
    parse_afl,
    read_record,
)
from emvwire.errors import DecodeError, EmvWireError
from emvwire.oda import (
    Sm2CaKey,
    build_static_data,
    recover_icc_key,
    recover_issuer_key,
    recover_sm2_icc_key,
    recover_sm2_issuer_key,
    verify_fdda,
    verify_sm2_fdda,
)
from emvwire.qualifiers import AIP, CTQ, TTQ, TVR_BITS, is_set
from emvwire.tags import Tag
from emvwire.track2 import track2_expiry, track2_pan
from terminal.kernel.bounds import RecordBytes, afl_problem
from terminal.kernel.brand import brand_mismatch
from terminal.kernel.k3.rules import CVM_RESULTS, CvmDecision, cryptogram_type, visa_cvm
from terminal.kernel.outcome import FlowEndError, Outcome, UiMessage
from terminal.kernel.registry import FlowKernel, KernelContext
from terminal.kernel.transaction import (
    Cvm,
    OdaResult,
    TransactionResult,
)

__all__ = ["CARD_LENGTHS", "KERNEL", "MANDATORY", "NAME"]

NAME: Final = "kernel 3 (Visa qVSDC)"

#: Lengths (minimum, maximum) a card's data objects may have (Book 3 Annex A, Book C-3
#: Annex A). A value outside ends the application.
CARD_LENGTHS: Final[Mapping[int, tuple[int, int]]] = {
    Tag.TRACK2_EQUIVALENT: (1, 19),
    Tag.PAN: (1, 10),
    Tag.EXPIRATION_DATE: (3, 3),
    Tag.EFFECTIVE_DATE: (3, 3),
    Tag.ISSUER_COUNTRY_CODE: (2, 2),
    Tag.PAN_SEQUENCE_NUMBER: (1, 1),
    Tag.AIP: (2, 2),
    Tag.CA_PUBLIC_KEY_INDEX: (1, 1),
    Tag.AFL: (4, 252),
    Tag.APPLICATION_USAGE_CONTROL: (2, 2),
    Tag.IAD: (1, 32),
    Tag.TOKEN_REQUESTOR_ID: (6, 6),
    Tag.PAR: (29, 29),
    Tag.LAST4_OF_PAN: (2, 2),
    Tag.APPLICATION_CRYPTOGRAM: (8, 8),
    Tag.CID: (1, 1),
    Tag.ISSUER_PUBLIC_KEY_EXPONENT: (1, 3),
    Tag.ATC: (2, 2),
    Tag.ICC_PUBLIC_KEY_EXPONENT: (1, 3),
    Tag.AVAILABLE_OFFLINE_SPENDING_AMOUNT: (6, 6),
    Tag.CARD_AUTHENTICATION_RELATED_DATA: (1, 16),
    Tag.CTQ: (2, 2),
    Tag.FORM_FACTOR_INDICATOR: (4, 32),
}
#: Data objects the GPO answer must hold (Book C-3 §5.4.2.1).
MANDATORY: Final = {
    Tag.AIP: "AIP",
    Tag.ATC: "ATC",
    Tag.IAD: "IAD",
    Tag.TRACK2_EQUIVALENT: "track 2 equivalent data",
}
#: Data objects fDDA needs from the card.
_FDDA_TAGS: Final = {
    Tag.SDAD: "SDAD",
    Tag.CA_PUBLIC_KEY_INDEX: "CA key index",
    Tag.ISSUER_PUBLIC_KEY_CERTIFICATE: "issuer certificate",
    Tag.ISSUER_PUBLIC_KEY_EXPONENT: "issuer exponent",
    Tag.ICC_PUBLIC_KEY_CERTIFICATE: "ICC certificate",
    Tag.ICC_PUBLIC_KEY_EXPONENT: "ICC exponent",
    Tag.CARD_AUTHENTICATION_RELATED_DATA: "card authentication related data",
}
#: The same for the SM variant (:mod:`emvwire.oda.sm`): SM2 keys have no exponents.
_SM2_FDDA_TAGS: Final = {
    tag: name
    for tag, name in _FDDA_TAGS.items()
    if tag not in (Tag.ISSUER_PUBLIC_KEY_EXPONENT, Tag.ICC_PUBLIC_KEY_EXPONENT)
}
#: Visa form factor indicator (9F6E byte 1 bits 5-1) of a mobile phone: such
#: credentials are tokens.
_FFI_MOBILE_PHONE: Final = 0x03
#: Data objects not kept in the result (cardholder name, the PAN itself: the track 2
#: equivalent data travels apart) nor the certificates.
_DROPPED: Final = frozenset(
    {
        Tag.PAN,
        Tag.CARDHOLDER_NAME,
        Tag.ISSUER_PUBLIC_KEY_CERTIFICATE,
        Tag.ISSUER_PUBLIC_KEY_REMAINDER,
        Tag.ICC_PUBLIC_KEY_CERTIFICATE,
        Tag.ICC_PUBLIC_KEY_REMAINDER,
        Tag.SDAD,
    }
)


def _year(yy: int) -> int:
    return 2000 + yy if yy < 50 else 1900 + yy


def _bcd(value: bytes) -> int | None:
    text = value.hex()
    return int(text) if text.isdigit() else None


class _Flow:
    """One kernel 3 transaction over a :class:`KernelContext`."""

    #: The kernel's name in results and the trace (kernel 7 reuses this flow).
    name: ClassVar[str] = NAME

    def __init__(self, ctx: KernelContext) -> None:
        self.ctx = ctx
        self.term = ctx.terminal_data()
        self.ttq = bytearray(self.term.get(Tag.TTQ, bytes(4)).ljust(4, b"\x00")[:4])
        self.card: dict[int, bytes] = {}
        self.oda_records: list[tuple[int, bytes]] = []
        self.tvr = bytearray(5)
        self.reasons: list[str] = []
        self.cvm = Cvm.NOT_DETERMINED
        self.oda = OdaResult.NOT_PERFORMED
        #: Whether the card's CA key is an SM2 key (fDDA's SM variant).
        self.sm2 = False
        self.pan = ""

    # --- helpers --------------------------------------------------------------------

    def _set_tvr(self, name: str) -> None:
        index, mask = TVR_BITS[name]
        self.tvr[index] |= mask

    def _store(self, objects: list[tlv.Tlv], where: str) -> None:
        """Keep the primitive objects of one template: once each, valid lengths, the
        same value when seen again elsewhere (§5.4.2.2)."""
        seen: set[int] = set()
        for obj in objects:
            if obj.constructed:
                continue
            if obj.tag in seen:
                raise FlowEndError(
                    Outcome.END_APPLICATION, f"{where}: tag {tlv.tag_hex(obj.tag)} appears twice"
                )
            seen.add(obj.tag)
            bounds = CARD_LENGTHS.get(obj.tag)
            if bounds is not None and not bounds[0] <= len(obj.value) <= bounds[1]:
                raise FlowEndError(
                    Outcome.END_APPLICATION,
                    f"{where}: tag {tlv.tag_hex(obj.tag)} has a wrong length "
                    f"({len(obj.value)} bytes)",
                )
            old = self.card.get(obj.tag)
            if old is not None and old != obj.value:
                raise FlowEndError(
                    Outcome.END_APPLICATION,
                    f"{where}: tag {tlv.tag_hex(obj.tag)} differs from its earlier value",
                )
            self.card[obj.tag] = obj.value
        if Tag.PAN in self.card and Tag.TRACK2_EQUIVALENT in self.card:
            pan_5a = self.card[Tag.PAN].hex().upper().rstrip("F")
            if pan_5a != track2_pan(self.card[Tag.TRACK2_EQUIVALENT]):
                raise FlowEndError(
                    Outcome.END_APPLICATION,
                    f"{where}: the PAN (5A) is not the one of the track 2 data (57)",
                )

    # --- steps ----------------------------------------------------------------------

    def _pdol(self) -> bytes:
        try:
            top = tlv.decode_leading(self.ctx.fci, Tag.FCI_TEMPLATE)
        except DecodeError as exc:
            raise FlowEndError(Outcome.SELECT_NEXT, f"malformed FCI: {exc.message}") from None
        a5 = next((c for c in top.children if c.tag == Tag.FCI_PROPRIETARY_TEMPLATE), None)
        if a5 is None:
            raise FlowEndError(Outcome.SELECT_NEXT, "the FCI has no proprietary template (A5)")
        fields = {c.tag: c.value for c in a5.children}
        if not self.ctx.label and fields.get(Tag.APPLICATION_LABEL):
            self.ctx.label = fields[Tag.APPLICATION_LABEL].decode("latin-1").strip()
        pdol = fields.get(Tag.PDOL, b"")
        try:
            entries = dol.parse(pdol)
        except EmvWireError:
            raise FlowEndError(Outcome.END_APPLICATION, "malformed PDOL (9F38)") from None
        if not any(e.tag == Tag.TTQ for e in entries):
            raise FlowEndError(
                Outcome.DECLINED,
                "the card offers no qVSDC (its PDOL does not ask for the TTQ): "
                "mag-stripe mode is not supported",
            )
        return dol.build(entries, self.term)

    def _gpo(self, pdol_data: bytes) -> None:
        try:
            command = get_processing_options(pdol_data)
            command.encode()
        except ApduError:
            raise FlowEndError(
                Outcome.END_APPLICATION, "the PDOL asks for more data than fits"
            ) from None
        with self.ctx.step("gpo"):
            answer = self.ctx.exchange(command)
        sw = answer.sw
        if sw in (0x6984, 0x6986):
            raise FlowEndError(
                Outcome.TRY_ANOTHER_INTERFACE,
                f"GET PROCESSING OPTIONS answered {sw:04X}",
                UiMessage.PLEASE_INSERT_CARD,
            )
        if sw == 0x6985:
            raise FlowEndError(Outcome.SELECT_NEXT, "GET PROCESSING OPTIONS answered 6985")
        if sw != 0x9000:
            raise FlowEndError(Outcome.END_APPLICATION, f"GET PROCESSING OPTIONS answered {sw:04X}")
        data = answer.data
        if data[:1] == b"\x80":
            raise FlowEndError(
                Outcome.DECLINED,
                "a format 1 GPO answer carries no cryptogram: mag-stripe mode is not supported",
            )
        try:
            template = tlv.decode_one(data, Tag.RESPONSE_FORMAT_2)
        except DecodeError as exc:
            raise FlowEndError(
                Outcome.END_APPLICATION, f"malformed GPO answer: {exc.message}"
            ) from None
        self._store(list(template.children), "GPO answer")
        if Tag.APPLICATION_CRYPTOGRAM not in self.card:
            raise FlowEndError(
                Outcome.DECLINED,
                "no application cryptogram in the GPO answer: mag-stripe mode is not supported",
            )
        missing = [name for tag, name in MANDATORY.items() if tag not in self.card]
        if missing:
            raise FlowEndError(
                Outcome.END_APPLICATION, "mandatory data missing: " + ", ".join(missing)
            )

    def _read_records(self) -> None:
        afl_raw = self.card.get(Tag.AFL)
        if afl_raw is None:
            return
        try:
            afl = parse_afl(afl_raw)
        except DecodeError:
            raise FlowEndError(Outcome.END_APPLICATION, "malformed AFL (94)") from None
        limits = self.ctx.config.records
        refused = afl_problem(afl, limits)
        if refused:
            raise FlowEndError(Outcome.END_APPLICATION, refused)
        read = RecordBytes(limits)
        with self.ctx.step("read_records"):
            for entry in afl:
                for number in entry.records:
                    answer = self.ctx.exchange(read_record(entry.sfi, number))
                    where = f"SFI {entry.sfi} record {number}"
                    if answer.sw != 0x9000:
                        raise FlowEndError(
                            Outcome.END_APPLICATION, f"READ RECORD {where} answered {answer.sw:04X}"
                        )
                    too_much = read.add(answer.data)
                    if too_much:
                        raise FlowEndError(Outcome.END_APPLICATION, f"{too_much} (at {where})")
                    try:
                        record = tlv.decode_one(answer.data, Tag.RECORD_TEMPLATE)
                    except DecodeError as exc:
                        raise FlowEndError(
                            Outcome.END_APPLICATION, f"malformed record {where}: {exc.message}"
                        ) from None
                    self._store(list(record.children), where)
                    if number in entry.oda_records:
                        self.oda_records.append((entry.sfi, answer.data))

    def _fdda(self, today: date) -> str | None:
        """Verify fDDA; ``None`` when it passes, else why it failed.

        The CA key the card names (8F) decides the variant: an RSA key, Book 2's
        certificates and Table 17; an SM2 key (UnionPay's SM suite), the certificates
        and signature of :mod:`emvwire.oda.sm`."""
        card = self.card
        if not is_set(card.get(Tag.AIP, b""), AIP.DDA):
            return "the card does not support fDDA (AIP)"
        rid = self.ctx.aid[:5]
        index = card.get(Tag.CA_PUBLIC_KEY_INDEX, b"")
        self.sm2 = len(index) == 1 and isinstance(self.ctx.ca_keys.find(rid, index[0]), Sm2CaKey)
        needed = _SM2_FDDA_TAGS if self.sm2 else _FDDA_TAGS
        missing = [name for tag, name in needed.items() if tag not in card]
        if missing:
            return "fDDA data missing: " + ", ".join(missing)
        card_auth = card[Tag.CARD_AUTHENTICATION_RELATED_DATA]
        if card_auth[0] != 0x01:
            return f"fDDA version {card_auth[0]:02X} is not supported"
        pan = card[Tag.PAN].hex().upper().rstrip("F") if Tag.PAN in card else self.pan
        txn = {
            "unpredictable_number": self.term[Tag.UNPREDICTABLE_NUMBER],
            "amount_authorised": self.term[Tag.AMOUNT_AUTHORISED],
            "currency_code": self.term[Tag.TRANSACTION_CURRENCY_CODE],
            "card_auth_data": card_auth,
        }
        try:
            with self.ctx.step("oda"):
                static = build_static_data(
                    self.oda_records, aip=card[Tag.AIP], sda_tag_list=card.get(Tag.SDA_TAG_LIST)
                )
                if self.sm2:
                    ca_sm2 = self.ctx.ca_keys.get_sm2(rid, index[0], today=today)
                    issuer_sm2 = recover_sm2_issuer_key(
                        ca_sm2, card[Tag.ISSUER_PUBLIC_KEY_CERTIFICATE], pan, today
                    )
                    icc_sm2 = recover_sm2_icc_key(
                        issuer_sm2, card[Tag.ICC_PUBLIC_KEY_CERTIFICATE], pan, static, today
                    )
                    verify_sm2_fdda(icc_sm2, card[Tag.SDAD], **txn)
                    return None
                ca_key = self.ctx.ca_keys.get(rid, index[0], today=today)
                issuer = recover_issuer_key(
                    ca_key,
                    card[Tag.ISSUER_PUBLIC_KEY_CERTIFICATE],
                    card.get(Tag.ISSUER_PUBLIC_KEY_REMAINDER),
                    card[Tag.ISSUER_PUBLIC_KEY_EXPONENT],
                    pan,
                    today,
                )
                icc = recover_icc_key(
                    issuer,
                    card[Tag.ICC_PUBLIC_KEY_CERTIFICATE],
                    card.get(Tag.ICC_PUBLIC_KEY_REMAINDER),
                    card[Tag.ICC_PUBLIC_KEY_EXPONENT],
                    pan,
                    static,
                    today,
                )
                verify_fdda(icc, card[Tag.SDAD], **txn)
        except EmvWireError as exc:
            return f"fDDA failed: {exc}"
        return None

    def _expired(self, today: date) -> bool:
        raw = self.card.get(Tag.EXPIRATION_DATE)
        if raw is not None:
            value = _bcd(raw)
            if value is None:
                raise FlowEndError(Outcome.END_APPLICATION, "malformed expiry date (5F24)")
            expiry = (_year(value // 10000), value // 100 % 100, value % 100)
            return (today.year, today.month, today.day) > expiry
        yymm = track2_expiry(self.card[Tag.TRACK2_EQUIVALENT])
        if not yymm:
            raise FlowEndError(Outcome.END_APPLICATION, "no expiry date in the track 2 data")
        value = _bcd(yymm)
        assert value is not None  # track2_expiry checked the digits
        return (today.year, today.month) > (_year(value // 100), value % 100)

    # --- the flow -------------------------------------------------------------------

    def run(self) -> TransactionResult:
        try:
            return self._flow()
        except FlowEndError as stop:
            self.reasons.append(stop.reason)
            self.ctx.note(f"{self.name}: {stop.outcome.label}: {stop.reason}")
            if stop.outcome is Outcome.DECLINED and self.cvm is Cvm.NOT_DETERMINED:
                self.cvm = Cvm.NO_CVM
            return self._result(stop.outcome, message=stop.message)

    def _flow(self) -> TransactionResult:
        ctx = self.ctx
        today = ctx.when.date()
        pdol_data = self._pdol()
        self._gpo(pdol_data)
        card = self.card
        kind = cryptogram_type(card.get(Tag.CID), card[Tag.IAD])
        if kind is None:
            raise FlowEndError(Outcome.DECLINED, "the cryptogram type is RFU or cannot be told")
        ctx.note(f"{self.name}: the card answered an {AC_NAMES[kind]}")
        self.pan = track2_pan(card[Tag.TRACK2_EQUIVALENT])
        if not self.pan:
            raise FlowEndError(Outcome.END_APPLICATION, "malformed track 2 equivalent data (57)")
        ctq = card.get(Tag.CTQ)
        cvm_required = is_set(self.ttq, TTQ.CVM_REQUIRED)
        online_required = is_set(self.ttq, TTQ.ONLINE_CRYPTOGRAM_REQUIRED)
        offline_only = is_set(self.ttq, TTQ.OFFLINE_ONLY)
        offline_approval = kind == TC and not online_required
        cdcvm_claimed = ctq is not None and is_set(ctq, CTQ.CDCVM_PERFORMED)
        need_signature = kind != AAC and (offline_approval or (cdcvm_claimed and cvm_required))
        if need_signature:
            self._read_records()
        mixup = brand_mismatch(ctx.aid, self.pan)
        if mixup:
            raise FlowEndError(Outcome.DECLINED, mixup)
        if kind == AAC:
            raise FlowEndError(Outcome.DECLINED, "the card declined (AAC)")
        go_online = kind == ARQC
        if kind == TC and online_required:
            self.reasons.append("a TC although an online cryptogram was required: online")
            go_online = True
        if self._expired(today):
            self._set_tvr("expired_application")
            if kind == TC and not go_online:
                if ctq is not None and is_set(ctq, CTQ.ONLINE_IF_EXPIRED) and not offline_only:
                    self.reasons.append("application expired: online as the CTQ asks")
                    go_online = True
                else:
                    raise FlowEndError(Outcome.DECLINED, "application expired")
        if ctx.indicators.floor_limit_exceeded:
            self._set_tvr("floor_limit_exceeded")
        cdcvm_verified = False
        if need_signature:
            failure = self._fdda(today)
            if failure is None:
                self.oda = OdaResult.PASSED
                signed = card[Tag.CARD_AUTHENTICATION_RELATED_DATA]
                if ctq is not None and len(signed) >= 7:
                    if signed[5:7] != ctq:
                        raise FlowEndError(
                            Outcome.DECLINED,
                            "the CTQ differs from the copy the card signed (9F69): "
                            "changed on the way",
                        )
                    cdcvm_verified = cdcvm_claimed
            else:
                self.oda = OdaResult.FAILED
                self._set_tvr("dda_failed")
                self.reasons.append(failure)
                if offline_approval and not go_online:
                    go_online = self._after_oda_failure(ctq, offline_only)
        else:
            self._set_tvr("oda_not_performed")
        decision = visa_cvm(
            ttq=bytes(self.ttq),
            ctq=ctq,
            online_cryptogram=go_online or kind == ARQC,
            cdcvm_verified=cdcvm_verified,
            policy=ctx.combination.unverified_cdcvm,
        )
        self._apply_cvm(decision)
        if decision.online and not go_online:
            if kind != ARQC:
                raise FlowEndError(
                    Outcome.DECLINED, "online PIN is required but the card approved offline"
                )
            go_online = True
        if go_online:
            if offline_only:
                raise FlowEndError(
                    Outcome.DECLINED, "the card asks to go online; the reader is offline-only"
                )
            return self._result(Outcome.ONLINE_REQUEST)
        return self._result(Outcome.APPROVED)

    def _after_oda_failure(self, ctq: bytes | None, offline_only: bool) -> bool:
        """Book C-3 §5.6.1.2: online, another interface, or decline (returns True: online)."""
        if ctq is not None and is_set(ctq, CTQ.ONLINE_IF_ODA_FAILS) and not offline_only:
            self.reasons.append("fDDA failed: online as the CTQ asks")
            return True
        if (
            ctq is not None
            and is_set(ctq, CTQ.SWITCH_IF_ODA_FAILS)
            and is_set(self.ttq, TTQ.CONTACT_CHIP)
        ):
            raise FlowEndError(
                Outcome.TRY_ANOTHER_INTERFACE,
                "fDDA failed: another interface as the CTQ asks",
                UiMessage.PLEASE_INSERT_CARD,
            )
        raise FlowEndError(Outcome.DECLINED, "fDDA failed on an offline approval")

    def _apply_cvm(self, decision: CvmDecision) -> None:
        self.cvm = decision.cvm
        if decision.reason and not decision.decline:
            self.reasons.append(decision.reason)
        if decision.decline:
            self._set_tvr("cardholder_verification_failed")
            raise FlowEndError(Outcome.DECLINED, decision.reason)

    def _result(self, outcome: Outcome, message: UiMessage | None = None) -> TransactionResult:
        ctx = self.ctx
        data = {t: v for t, v in self.term.items()}
        data.update({t: v for t, v in self.card.items() if t not in _DROPPED})
        data[Tag.DF_NAME] = ctx.aid
        if self.cvm is not Cvm.NOT_DETERMINED:
            data[Tag.CVM_RESULTS] = CVM_RESULTS[self.cvm]
        ffi = self.card.get(Tag.FORM_FACTOR_INDICATOR, b"")
        token = Tag.TOKEN_REQUESTOR_ID in self.card or (
            bool(ffi) and ffi[0] & 0x1F == _FFI_MOBILE_PHONE
        )
        return ctx.result(
            outcome,
            kernel=self.name,
            reasons=self.reasons,
            data=data,
            cvm=self.cvm,
            oda=self.oda,
            oda_method=(
                ("fDDA (SM2)" if self.sm2 else "fDDA")
                if self.oda is not OdaResult.NOT_PERFORMED
                else ""
            ),
            tvr=bytes(self.tvr),
            # The card MAC'd the TVR of the PDOL (Book C-3: the reader gives it at GPO,
            # before its own checks); field 55 must carry that one for the issuer to
            # verify the ARQC. The final TVR stays in the result for the receipt.
            field55_tvr=self.term.get(Tag.TVR, bytes(5)),
            pan=self.pan,
            psn=self.card.get(Tag.PAN_SEQUENCE_NUMBER),
            token=token,
            message=message,
        )


#: Visa kernel 3, qVSDC (module docstring), as the registry loads it
#: (:data:`terminal.kernel.registry.BUILTIN_KERNEL_MODULES`).
KERNEL: Final = FlowKernel(b"\x03", NAME, _Flow)
