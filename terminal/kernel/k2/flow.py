"""Mastercard kernel 2 in EMV mode (EMV Contactless Book C-2), from GPO to the outcome.

The entry point (:mod:`terminal.kernel.entry_point`) has selected a Mastercard
application and activates :data:`KERNEL` with a
:class:`~terminal.kernel.registry.KernelContext`. The flow (Book C-2 §6 states S1-S10,
with the decisions of :mod:`terminal.kernel.k2.rules`):

1. **FCI and PDOL.** The PDOL (``9F38``) of the FCI is filled from the terminal data,
   the combination's kernel data, the transaction, the Unpredictable Number drawn from
   the context's CSPRNG, and Terminal Capabilities ``9F33`` built from ``DF8117``,
   ``DF8118``/``DF8119`` and ``DF811F`` (Book C-2 §6.3). A malformed FCI or PDOL: Select
   Next. Data after the FCI template are ignored.
2. **GET PROCESSING OPTIONS** (Book C-2 §5.4). ``6985``: Select Next; another status
   word: End Application. The answer is format 1 (``80``: AIP || AFL) or format 2
   (``77``), with AIP ``82`` and AFL ``94`` mandatory.
3. **EMV mode only.** A card whose AIP does not offer EMV mode (byte 2 bit 8), or a
   reader configured without EMV mode, ends in Try Another Interface: this kernel never
   runs mag-stripe mode (Roland and Langer, WOOT 2013: the pre-play and downgrade of
   mag-stripe mode), so it sends no COMPUTE CRYPTOGRAPHIC CHECKSUM. The Reader
   Contactless Transaction Limit of the kernel data (``DF8124``, or ``DF8125`` with
   on-device CVM), when configured, is checked here too.
4. **Relay resistance** (Book C-2 §5.3) when the AIP (byte 2 bit 1) and the Kernel
   Configuration ``DF811B`` (bit 5) both support it: EXCHANGE RELAY RESISTANCE DATA with
   the Unpredictable Number as Terminal Relay Resistance Entropy ``DF8301``, timed
   around the reader's transmit with the context's monotonic timer; the rules of
   :func:`~terminal.kernel.k2.rules.judge_relay` with the thresholds of the kernel
   data (``DF8132``-``DF8137``): too fast ends the application, too slow retries (new
   entropy, new UN) up to twice and then sets "relay resistance time limits exceeded";
   TVR byte 5 says "RRP performed". Without it, "RRP not performed".
5. **READ RECORD** for each record of the AFL (Book 3 §10.2). A status other than
   9000, a record of SFI 1-10 that is not one template ``70``, or a data object that
   the card has already given (a duplicate): End Application. Records the AFL marks
   for offline data authentication are kept for the static data (Book 3 §10.3). An
   AFL naming more entries or records than the configuration's bounds ends the
   application before any READ RECORD, records past its byte bound when they do
   (:mod:`terminal.kernel.bounds`).
6. **Card checks.** PAN ``5A``, expiry ``5F24`` and CDOL1 ``8C`` are mandatory (End
   Application); a PAN outside the scheme's IIN ranges (card brand mixup, Basin et al.
   2021) or a Track 2 PAN that differs from ``5A``: Declined, no GENERATE AC.
7. **ODA choice.** CDA when the AIP (byte 1 bit 1) and Terminal Capabilities byte 3
   bit 4 both offer it; else "offline data authentication was not performed" (kernel 2
   does no SDA or DDA). Missing certificate data or CA key, or an SDA tag list other
   than ``82``: "CDA failed" before GENERATE AC (Book C-2 §7.6).
8. **Processing restrictions, CVM selection, floor limit, terminal action analysis**
   (Book 3 §10.4, Book C-2 §7.5, §7.8; Book 3 §10.7): TVR and CVM Results ``9F34``.
9. **GENERATE AC** (Book 3 §6.5.5) with the CDOL1 data, CDA requested for a TC or ARQC
   when CDA was chosen and has not failed (a card whose CDA failed before is never
   asked for a TC: ARQC, or AAC on an offline-only reader). The answer (format 1
   ``80`` or 2 ``77``) must hold the CID ``9F27`` and ATC ``9F36``, and the cryptogram
   ``9F26`` unless a CDA signature carries it; the card may not answer a higher AC
   type than asked (Book 3 §6.5.5.4).
10. **CDA** (Book 2 §6.6.2) after the card has answered: CA key by RID and ``8F``,
    issuer and ICC public keys from the records, the static data, then the signature
    over PDOL data || CDOL1 data || the answer's data objects. A failure on a TC or
    ARQC sets "CDA failed" and declines (Book C-2 §7.9).
11. **Outcome**: TC Approved, ARQC Online Request (with field 55 for the issuer), AAC
    Declined; an AAC with POS Cardholder Interaction Information (``DF4B``) asking for
    on-device verification ends the application with "See phone" (Book C-2 §7.10).

Every card answer, however malformed, ends in an outcome with a reason: emvwire's
errors become End Application, a card that leaves the field Try Again. Reasons never
hold a PAN, track data or a key.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator, Mapping
from typing import ClassVar, Final

from emvwire import contract, dol, tlv
from emvwire.apdu import (
    AAC,
    AC_NAMES,
    ARQC,
    CDA_REQUESTED,
    TC,
    AflEntry,
    RApdu,
    exchange_relay_resistance_data,
    generate_ac,
    get_processing_options,
    parse_afl,
    read_record,
)
from emvwire.errors import DecodeError, EmvWireError
from emvwire.mask import scrub
from emvwire.oda import (
    build_static_data,
    recover_icc_key,
    recover_issuer_key,
    verify_cda,
)
from emvwire.qualifiers import AIP, is_set
from emvwire.tags import Tag
from emvwire.track2 import track2_pan
from terminal.kernel.bounds import RecordBytes, afl_problem
from terminal.kernel.k2.rules import (
    KERNEL_CONFIG_BITS,
    RRP_NOT_PERFORMED,
    RRP_PERFORMED,
    CvmSelection,
    RelayLimits,
    RelayVerdict,
    Tvr,
    action_analysis,
    brand_consistent,
    is_online_capable,
    judge_relay,
    parse_relay_response,
    processing_restrictions,
    select_cvm,
    terminal_capabilities,
)
from terminal.kernel.outcome import FlowEndError, Outcome, Status, UiMessage
from terminal.kernel.registry import FlowKernel, KernelContext
from terminal.kernel.transaction import (
    Cvm,
    OdaResult,
    TransactionResult,
)
from terminal.readers.base import CommunicationError, NoCardError, ProtocolError

__all__ = [
    "FIELD_55_TAGS",
    "KERNEL",
    "NAME",
]

NAME: Final = "kernel 2 (Mastercard M/Chip)"

#: Field 55 of a kernel 2 authorisation (ICC system related data): the shared list of
#: :data:`emvwire.contract.FIELD_55_TAGS` less the Visa-only 9F66 and 9F6C,
#: which mean other things in kernel 2 (Book C-2 Annex A).
FIELD_55_TAGS: Final[tuple[int, ...]] = tuple(
    t for t in contract.FIELD_55_TAGS if t not in (Tag.PUNATC_TRACK2, Tag.MAG_STRIPE_VERSION_CARD)
)

#: Data objects the card must give before GENERATE AC (Book C-2 §7.3; Book 3 §7.2).
MANDATORY_CARD_DATA: Final[Mapping[int, str]] = {
    Tag.PAN: "PAN (5A)",
    Tag.EXPIRATION_DATE: "application expiration date (5F24)",
    Tag.CDOL1: "CDOL1 (8C)",
}
#: What CDA needs from the records (Book 2 §6.1): CA key index, issuer certificate and
#: exponent, ICC certificate and exponent.
CDA_CARD_DATA: Final[tuple[int, ...]] = (
    Tag.CA_PUBLIC_KEY_INDEX,
    Tag.ISSUER_PUBLIC_KEY_CERTIFICATE,
    Tag.ISSUER_PUBLIC_KEY_EXPONENT,
    Tag.ICC_PUBLIC_KEY_CERTIFICATE,
    Tag.ICC_PUBLIC_KEY_EXPONENT,
)
#: Status word of GPO asking for another application (Book C-2 §6.3, Book 3 §6.5.8.4).
SW_SELECT_NEXT: Final = 0x6985
#: Largest DOL data a short C-APDU can carry (GPO wraps PDOL data in 83 L).
_MAX_PDOL_DATA: Final = 252
_MAX_CDOL_DATA: Final = 255
#: POS Cardholder Interaction Information (DF4B) bits asking the cardholder to act on
#: the phone (Book C-2 Annex A; the default Phone Message Table DF8131): byte 2 bits
#: 4-1 and byte 3 bit 1.
_PCII_SEE_PHONE: Final = (0x000F01).to_bytes(3, "big")
#: Terminal Capabilities (9F33) byte 3 bit 4: CDA (Book 4 Annex A2).
_CAPABILITY_CDA: Final = 0x08


def _sw(r: RApdu) -> str:
    return f"{r.sw:04X}"


def _primitives(objects: Iterable[tlv.Tlv]) -> Iterator[tlv.Tlv]:
    for obj in objects:
        if obj.constructed:
            yield from _primitives(obj.children)
        else:
            yield obj


def _pan_digits(value: bytes) -> str:
    """The digits of a cn PAN (5A), ``""`` if it is not 1-19 digits after F padding."""
    text = value.hex().upper().rstrip("F")
    return text if text.isdigit() and 1 <= len(text) <= 19 else ""


class _Flow:
    """One kernel 2 transaction over a :class:`KernelContext`: the data gathered so far
    and the decisions made."""

    __slots__ = (
        "aip",
        "card",
        "cda",
        "cdol1_data",
        "ctx",
        "cvm",
        "db",
        "fci",
        "kernel_config",
        "oda",
        "pan",
        "pdol_data",
        "reasons",
        "receipt",
        "tvr",
        "un",
    )
    #: The kernel's name in results, and in the trace (kernel 4 reuses this flow).
    name: ClassVar[str] = NAME
    short: ClassVar[str] = "kernel 2"

    def __init__(self, ctx: KernelContext) -> None:
        self.ctx = ctx
        #: Terminal-side data objects (and what the kernel computes).
        self.db = db = ctx.terminal_data()
        kernel_data = ctx.combination.kernel_data
        config = kernel_data.get(Tag.KERNEL_CONFIGURATION, b"\x00")
        db[Tag.TERMINAL_CAPABILITIES] = terminal_capabilities(
            kernel_data, cvm_required=None, configured=db.get(Tag.TERMINAL_CAPABILITIES)
        )
        self.kernel_config = config[0] if config else 0
        self.un = db[Tag.UNPREDICTABLE_NUMBER]
        #: Data objects of the FCI (the entry point's SELECT).
        self.fci: dict[int, bytes] = {}
        #: Data objects the card gave in GPO, records, GENERATE AC.
        self.card: dict[int, bytes] = {}
        self.tvr = Tvr()
        self.aip = b""
        self.pdol_data = b""
        self.cdol1_data = b""
        self.pan = ""
        self.cda = False
        self.cvm = Cvm.NOT_DETERMINED
        self.receipt = False
        self.oda = OdaResult.NOT_PERFORMED
        self.reasons: list[str] = []

    # --- sequencing ----------------------------------------------------------------

    def run(self) -> TransactionResult:
        try:
            outcome, message = self._run()
            reason = ""
        except FlowEndError as end:
            outcome, message, reason = end.outcome, end.message, end.reason
        except (CommunicationError, NoCardError) as exc:
            outcome, message = Outcome.TRY_AGAIN, None
            reason = f"card removed or not answering: {scrub(str(exc))}"
        except ProtocolError as exc:
            outcome, message = Outcome.END_APPLICATION, None
            reason = f"reader protocol error: {scrub(str(exc))}"
        except EmvWireError as exc:
            outcome, message = Outcome.END_APPLICATION, None
            reason = f"card data error: {scrub(str(exc))}"
        return self._result(outcome, reason, message)

    def _result(
        self, outcome: Outcome, reason: str, message: UiMessage | None
    ) -> TransactionResult:
        reasons = list(self.reasons)
        if reason:
            reasons.append(reason)
        self.ctx.note(f"{self.short}: {outcome.label}" + (f": {reason}" if reason else ""))
        data = {**self.fci, **self.card, **self.db, Tag.TVR: self.tvr.value}
        return self.ctx.result(
            outcome,
            kernel=self.name,
            reasons=reasons,
            data=data,
            cvm=self.cvm,
            oda=self.oda,
            oda_method="CDA" if self.cda else "",
            tvr=self.tvr.value,
            field55_tags=FIELD_55_TAGS,
            pan=self.pan,
            psn=self.card.get(Tag.PAN_SEQUENCE_NUMBER),
            token=Tag.TOKEN_REQUESTOR_ID in self.card,
            message=message,
            receipt=self.receipt,
        )

    def _why(self, text: str) -> None:
        self.reasons.append(text)
        self.ctx.note(f"{self.short}: {text}")

    def _run(self) -> tuple[Outcome, UiMessage | None]:
        ctx = self.ctx
        pdol = self._read_fci()
        with ctx.step("gpo"):
            afl = self._gpo(pdol)
        self._check_mode_and_limit()
        self._relay_resistance_step()
        with ctx.step("read_records"):
            oda_records = self._read_records(afl)
        self._check_card_data()
        self._choose_oda()
        self._restrictions_cvm_and_risk()
        ac_type = self._action_analysis()
        with ctx.step("gen_ac"):
            card_type, response = self._generate_ac(ac_type)
        ctx.show(UiMessage.CARD_READ_OK, status=Status.CARD_READ_SUCCESSFULLY)
        return self._finish(card_type, response, oda_records)

    # --- 1. FCI and PDOL -----------------------------------------------------------

    def _read_fci(self) -> bytes:
        try:
            objects = tlv.decode_leading(self.ctx.fci, Tag.FCI_TEMPLATE).children
        except DecodeError as exc:
            raise FlowEndError(Outcome.SELECT_NEXT, f"FCI is malformed: {exc.message}") from None
        for obj in _primitives(objects):
            self.fci.setdefault(obj.tag, obj.value)
        return self.fci.get(Tag.PDOL, b"")

    # --- 2. GET PROCESSING OPTIONS -------------------------------------------------

    def _gpo(self, pdol: bytes) -> list[AflEntry]:
        try:
            self.pdol_data = dol.build(pdol, self.db, kernel=2) if pdol else b""
        except EmvWireError as exc:
            raise FlowEndError(Outcome.SELECT_NEXT, f"PDOL is malformed: {exc}") from None
        if len(self.pdol_data) > _MAX_PDOL_DATA:
            raise FlowEndError(Outcome.SELECT_NEXT, f"PDOL asks for {len(self.pdol_data)} bytes")
        self.db[Tag.PDOL_RELATED_DATA] = self.pdol_data
        r = self.ctx.exchange(get_processing_options(self.pdol_data))
        if r.sw == SW_SELECT_NEXT:
            raise FlowEndError(Outcome.SELECT_NEXT, "GPO: conditions of use not satisfied (6985)")
        if not r.ok:
            raise FlowEndError(Outcome.END_APPLICATION, f"GPO answered {_sw(r)}")
        if r.data[:1] == b"\x80":
            value = self._template(r.data, Tag.RESPONSE_FORMAT_1, "GPO").value
            if len(value) < 2 or (len(value) - 2) % 4:
                raise FlowEndError(Outcome.END_APPLICATION, "GPO format 1 answer is not AIP || AFL")
            self._store({Tag.AIP: value[:2], Tag.AFL: value[2:]}, "GPO")
        else:
            template = self._template(r.data, Tag.RESPONSE_FORMAT_2, "GPO")
            self._store_objects(template.children, "GPO")
        if Tag.AIP not in self.card or Tag.AFL not in self.card:
            raise FlowEndError(Outcome.END_APPLICATION, "GPO answer lacks the AIP (82) or AFL (94)")
        self.aip = self.card[Tag.AIP]
        if len(self.aip) != 2:
            raise FlowEndError(Outcome.END_APPLICATION, "the AIP (82) is not 2 bytes")
        try:
            return parse_afl(self.card[Tag.AFL])
        except DecodeError as exc:
            raise FlowEndError(
                Outcome.END_APPLICATION, f"AFL (94) is malformed: {exc.message}"
            ) from None

    @staticmethod
    def _template(data: bytes, tag: int, what: str) -> tlv.Tlv:
        try:
            return tlv.decode_one(data, tag)
        except DecodeError as exc:
            raise FlowEndError(
                Outcome.END_APPLICATION, f"{what} answer is malformed: {exc.message}"
            ) from None

    def _store_objects(self, objects: Iterable[tlv.Tlv], what: str) -> None:
        self._store({}, what, objects)

    def _store(
        self, values: Mapping[int, bytes], what: str, objects: Iterable[tlv.Tlv] = ()
    ) -> None:
        """Add card data objects; one the card already gave ends the application
        (Book C-2 §4.4: a card may not give a data object twice)."""
        pairs = list(values.items()) + [(o.tag, o.value) for o in _primitives(objects)]
        for tag, value in pairs:
            if tag in self.card:
                raise FlowEndError(
                    Outcome.END_APPLICATION,
                    f"{what}: the card gave data object {tlv.tag_hex(tag)} twice",
                )
            self.card[tag] = value

    # --- 3. EMV mode and transaction limit -----------------------------------------

    def _check_mode_and_limit(self) -> None:
        if not is_set(self.aip, AIP.EMV_MODE) or (
            self.kernel_config & KERNEL_CONFIG_BITS["emv_mode_not_supported"]
        ):
            raise FlowEndError(
                Outcome.TRY_ANOTHER_INTERFACE,
                "the card offers no EMV mode; mag-stripe mode is never used",
            )
        odcvm = is_set(self.aip, AIP.ON_DEVICE_CVM) and bool(
            self.kernel_config & KERNEL_CONFIG_BITS["on_device_cvm"]
        )
        limit_tag = (
            Tag.READER_CONTACTLESS_TRANSACTION_LIMIT_ON_DEVICE_CVM
            if odcvm
            else Tag.READER_CONTACTLESS_TRANSACTION_LIMIT_NO_ON_DEVICE_CVM
        )
        limit = _amount(self.db.get(limit_tag))
        if limit is not None and self.ctx.transaction.amount > limit:
            raise FlowEndError(
                Outcome.TRY_ANOTHER_INTERFACE,
                f"amount above the reader contactless transaction limit ({limit_tag:X})",
            )

    # --- 4. relay resistance -------------------------------------------------------

    def _relay_resistance_step(self) -> None:
        """Relay resistance when the AIP and the Kernel Configuration offer it, else
        "RRP not performed" in the TVR (module docstring, step 4)."""
        if is_set(self.aip, AIP.RELAY_RESISTANCE) and (
            self.kernel_config & KERNEL_CONFIG_BITS["relay_resistance"]
        ):
            with self.ctx.step("relay_resistance"):
                self._relay_resistance()
        else:
            self.tvr.set_relay_resistance(RRP_NOT_PERFORMED)

    def _relay_resistance(self) -> None:
        ctx = self.ctx
        limits = RelayLimits.from_kernel_data(self.db)
        retries = 0
        entropy = self.un
        while True:
            before = ctx.card_seconds
            r = ctx.exchange(exchange_relay_resistance_data(entropy))
            elapsed_us = max(0, round((ctx.card_seconds - before) * 1_000_000))
            if not r.ok:
                raise FlowEndError(
                    Outcome.END_APPLICATION, f"EXCHANGE RELAY RESISTANCE DATA {_sw(r)}"
                )
            try:
                card = parse_relay_response(r.data)
            except DecodeError as exc:
                raise FlowEndError(
                    Outcome.END_APPLICATION, f"relay resistance: {exc.message}"
                ) from None
            judged = judge_relay(elapsed_us, card, limits, retries)
            ctx.note(
                f"kernel 2: relay resistance {elapsed_us} us, measured {judged.measured}"
                f" x 100 us (card {card.min_time}-{card.max_time}): {judged.verdict.value}"
            )
            if judged.verdict is RelayVerdict.ABORT:
                raise FlowEndError(
                    Outcome.END_APPLICATION,
                    f"relay resistance: the card answered in {judged.measured * 100} us, "
                    f"below its minimum processing time ({card.min_time * 100} us)",
                )
            if judged.verdict is RelayVerdict.RETRY:
                retries += 1
                entropy = self._fresh_un()
                continue
            break
        self.un = entropy
        self.db[Tag.UNPREDICTABLE_NUMBER] = entropy
        self.db[Tag.TERMINAL_RELAY_RESISTANCE_ENTROPY] = entropy
        self.db.update(card.data_objects())
        self.db[Tag.MEASURED_RELAY_RESISTANCE_PROCESSING_TIME] = min(
            judged.measured, 0xFFFF
        ).to_bytes(2, "big")
        self.db[Tag.RRP_COUNTER] = bytes((retries,))
        for name in judged.tvr:
            self.tvr.set(name)
            self._why(name.replace("_", " "))
        self.tvr.set_relay_resistance(RRP_PERFORMED)

    def _fresh_un(self) -> bytes:
        un = bytes(self.ctx.rng(4))
        if len(un) != 4:
            raise ValueError("the random source gave an entropy that is not 4 bytes")
        return un

    # --- 5. READ RECORD -------------------------------------------------------------

    def _read_records(self, afl: list[AflEntry]) -> list[tuple[int, bytes]]:
        limits = self.ctx.config.records
        refused = afl_problem(afl, limits)
        if refused:
            raise FlowEndError(Outcome.END_APPLICATION, refused)
        read = RecordBytes(limits)
        oda: list[tuple[int, bytes]] = []
        for entry in afl:
            for number in range(entry.first, entry.last + 1):
                r = self.ctx.exchange(read_record(entry.sfi, number))
                where = f"record {number} of SFI {entry.sfi}"
                if not r.ok:
                    raise FlowEndError(
                        Outcome.END_APPLICATION, f"READ RECORD {where} answered {_sw(r)}"
                    )
                too_much = read.add(r.data)
                if too_much:
                    raise FlowEndError(Outcome.END_APPLICATION, f"{too_much} (at {where})")
                if entry.sfi <= 10:
                    template = self._template(r.data, Tag.RECORD_TEMPLATE, f"READ RECORD {where}")
                    self._store_objects(template.children, where)
                if number < entry.first + entry.oda_count:
                    oda.append((entry.sfi, r.data))
        return oda

    # --- 6. card checks ------------------------------------------------------------

    def _check_card_data(self) -> None:
        missing = [name for tag, name in MANDATORY_CARD_DATA.items() if not self.card.get(tag)]
        if missing:
            raise FlowEndError(Outcome.END_APPLICATION, "card data missing: " + ", ".join(missing))
        pan = _pan_digits(self.card[Tag.PAN])
        if not pan:
            raise FlowEndError(Outcome.END_APPLICATION, "the PAN (5A) is not 1-19 digits")
        self.pan = pan
        if not brand_consistent(self.ctx.aid[:5], pan):
            raise FlowEndError(
                Outcome.DECLINED,
                f"card brand mixup: the PAN is outside the IIN ranges of AID "
                f"{self.ctx.aid.hex().upper()}",
            )
        track2 = self.card.get(Tag.TRACK2_EQUIVALENT)
        if track2 is not None and not hmac.compare_digest(track2_pan(track2), pan):
            raise FlowEndError(
                Outcome.DECLINED, "inconsistent card data: track 2 PAN differs from 5A"
            )

    # --- 7. ODA choice ---------------------------------------------------------------

    def _choose_oda(self) -> None:
        caps = self.db[Tag.TERMINAL_CAPABILITIES]
        if not (is_set(self.aip, AIP.CDA) and len(caps) == 3 and caps[2] & _CAPABILITY_CDA):
            self.tvr.set("oda_not_performed")
            self._why("no CDA: offline data authentication not performed")
            return
        self.cda = True
        missing = [t for t in CDA_CARD_DATA if not self.card.get(t)]
        if missing:
            self.tvr.set("icc_data_missing")
            self._cda_failed("certificate data missing: " + ", ".join(map(tlv.tag_hex, missing)))
            return
        index = self.card[Tag.CA_PUBLIC_KEY_INDEX][0]
        key = self.ctx.ca_keys.find(self.ctx.aid[:5], index)
        if key is None:
            self._cda_failed(f"no CA public key {self.ctx.aid[:5].hex().upper()}/{index:02X}")
        elif key.expired(self.ctx.when.date()):
            self._cda_failed(f"CA public key {key.label} has expired")
        sda_tags = self.card.get(Tag.SDA_TAG_LIST)
        if sda_tags and sda_tags != b"\x82":
            self._cda_failed("SDA tag list (9F4A) names tags other than 82")

    def _cda_failed(self, why: str) -> None:
        if not self.tvr.has("cda_failed"):
            self.tvr.set("cda_failed")
        self.oda = OdaResult.FAILED
        self._why(f"CDA failed: {why}")

    # --- 8. restrictions, CVM, risk, action analysis ----------------------------------

    def _restrictions_cvm_and_risk(self) -> None:
        ctx = self.ctx
        txn = ctx.transaction
        terminal_type = self.db.get(Tag.TERMINAL_TYPE, b"")
        for name in processing_restrictions(
            self.card,
            terminal_version=self.db.get(Tag.TERMINAL_APPLICATION_VERSION),
            terminal_country=self.db.get(Tag.TERMINAL_COUNTRY_CODE),
            terminal_type=terminal_type,
            additional_capabilities=self.db.get(Tag.ADDITIONAL_TERMINAL_CAPABILITIES),
            transaction_type=txn.type,
            other_amount=txn.other_amount,
            today=ctx.when.date(),
        ):
            self.tvr.set(name)
            self._why(name.replace("_", " "))
        cvm_required = _cvm_required(ctx, self.db)
        caps = terminal_capabilities(
            ctx.combination.kernel_data,
            cvm_required=cvm_required,
            configured=self.db[Tag.TERMINAL_CAPABILITIES],
        )
        self.db[Tag.TERMINAL_CAPABILITIES] = caps
        selection: CvmSelection = select_cvm(
            aip=self.aip,
            kernel_config=self.kernel_config,
            cvm_list=self.card.get(Tag.CVM_LIST),
            cvm_required=cvm_required,
            capability=caps[1] if len(caps) == 3 else 0,
            amount=txn.amount,
            other_amount=txn.other_amount,
            transaction_type=txn.type,
            transaction_currency=self.db.get(Tag.TRANSACTION_CURRENCY_CODE, b""),
            application_currency=self.card.get(Tag.APPLICATION_CURRENCY_CODE),
            terminal_type=terminal_type,
        )
        self.cvm = selection.cvm
        self.receipt = selection.receipt
        self.db[Tag.CVM_RESULTS] = selection.results
        for name in selection.tvr:
            self.tvr.set(name)
        ctx.note(f"{self.short}: CVM {selection.cvm.value} ({selection.reason})")
        floor = _amount(self.db.get(Tag.READER_CONTACTLESS_FLOOR_LIMIT))
        over_floor = ctx.indicators.floor_limit_exceeded or (
            floor is not None and txn.amount > floor
        )
        if over_floor:
            self.tvr.set("floor_limit_exceeded")

    def _action_analysis(self) -> int:
        decision = action_analysis(
            self.tvr.value,
            tac_denial=self.db.get(Tag.TAC_DENIAL),
            tac_online=self.db.get(Tag.TAC_ONLINE),
            tac_default=self.db.get(Tag.TAC_DEFAULT),
            iac_denial=self.card.get(Tag.IAC_DENIAL),
            iac_online=self.card.get(Tag.IAC_ONLINE),
            iac_default=self.card.get(Tag.IAC_DEFAULT),
            terminal_type=self.db.get(Tag.TERMINAL_TYPE, b""),
            transaction_type=self.ctx.transaction.type,
        )
        ac_type, reason = decision.ac_type, decision.reason
        if ac_type == TC and self.tvr.has("cda_failed"):
            # tapstack policy: a card whose CDA already failed is never approved offline,
            # whatever the action codes say; it goes online, or is declined offline-only.
            online = is_online_capable(self.db.get(Tag.TERMINAL_TYPE, b""))
            ac_type = ARQC if online else AAC
            reason = "CDA failed before GENERATE AC: no offline approval"
        self._why(f"asked for {AC_NAMES[ac_type]}: {reason}")
        return ac_type

    # --- 9. GENERATE AC -------------------------------------------------------------

    def _generate_ac(self, ac_type: int) -> tuple[int, bytes]:
        self.db[Tag.TVR] = self.tvr.value
        self.db[Tag.UNPREDICTABLE_NUMBER] = self.un
        try:
            self.cdol1_data = dol.build(self.card[Tag.CDOL1], self.db, kernel=2)
        except EmvWireError as exc:
            raise FlowEndError(Outcome.END_APPLICATION, f"CDOL1 (8C) is malformed: {exc}") from None
        if len(self.cdol1_data) > _MAX_CDOL_DATA:
            raise FlowEndError(
                Outcome.END_APPLICATION, f"CDOL1 asks for {len(self.cdol1_data)} bytes"
            )
        self.db[Tag.CDOL1_RELATED_DATA] = self.cdol1_data
        signed = self.cda and ac_type != AAC and not self.tvr.has("cda_failed")
        rcp = ac_type | (CDA_REQUESTED if signed else 0)
        self.db[Tag.REFERENCE_CONTROL_PARAMETER] = bytes((rcp,))
        r = self.ctx.exchange(generate_ac(rcp, self.cdol1_data))
        if not r.ok:
            raise FlowEndError(Outcome.END_APPLICATION, f"GENERATE AC answered {_sw(r)}")
        answer: dict[int, bytes] = {}
        if r.data[:1] == b"\x80":
            value = self._template(r.data, Tag.RESPONSE_FORMAT_1, "GENERATE AC").value
            if len(value) < 11:
                raise FlowEndError(
                    Outcome.END_APPLICATION, "GENERATE AC format 1 answer is too short"
                )
            answer = {
                Tag.CID: value[:1],
                Tag.ATC: value[1:3],
                Tag.APPLICATION_CRYPTOGRAM: value[3:11],
            }
            if len(value) > 11:
                answer[Tag.IAD] = value[11:]
        else:
            template = self._template(r.data, Tag.RESPONSE_FORMAT_2, "GENERATE AC")
            for obj in _primitives(template.children):
                if obj.tag in answer:
                    raise FlowEndError(
                        Outcome.END_APPLICATION,
                        f"GENERATE AC: data object {tlv.tag_hex(obj.tag)} given twice",
                    )
                answer[obj.tag] = obj.value
        cid = answer.get(Tag.CID, b"")
        if len(cid) != 1 or len(answer.get(Tag.ATC, b"")) != 2:
            raise FlowEndError(Outcome.END_APPLICATION, "GENERATE AC answer lacks the CID or ATC")
        card_type = cid[0] & 0xC0
        if card_type == 0xC0:
            raise FlowEndError(Outcome.END_APPLICATION, "GENERATE AC: CID names an RFU AC type")
        if _AC_RANK[card_type] > _AC_RANK[ac_type]:
            raise FlowEndError(
                Outcome.END_APPLICATION,
                f"GENERATE AC: the card answered {AC_NAMES[card_type]} to a request "
                f"for {AC_NAMES[ac_type]}",
            )
        if Tag.APPLICATION_CRYPTOGRAM not in answer and not (
            signed and card_type != AAC and Tag.SDAD in answer
        ):
            raise FlowEndError(
                Outcome.END_APPLICATION, "GENERATE AC answer lacks the cryptogram (9F26)"
            )
        for tag, value in answer.items():
            if tag != Tag.SDAD:
                self.card[tag] = value
        return card_type, (r.data if signed else b"")

    # --- 10-11. CDA and the outcome ---------------------------------------------------

    def _finish(
        self, card_type: int, response: bytes, oda_records: list[tuple[int, bytes]]
    ) -> tuple[Outcome, UiMessage | None]:
        if card_type == AAC:
            self._why(f"the card declined ({AC_NAMES[AAC]})")
            pcii = self.card.get(Tag.POS_CARDHOLDER_INTERACTION_INFORMATION, b"")
            if len(pcii) == 3 and any(a & b for a, b in zip(pcii, _PCII_SEE_PHONE, strict=True)):
                raise FlowEndError(
                    Outcome.END_APPLICATION,
                    "the phone asks for on-device verification: see phone, then tap again",
                    message=UiMessage.SEE_PHONE,
                )
            return Outcome.DECLINED, None
        if response:
            with self.ctx.step("oda"):
                self._verify_cda(response, oda_records)
            if self.oda is OdaResult.FAILED:
                return Outcome.DECLINED, None
        if card_type == TC:
            return Outcome.APPROVED, None
        return Outcome.ONLINE_REQUEST, None

    def _verify_cda(self, response: bytes, oda_records: list[tuple[int, bytes]]) -> None:
        ctx, card = self.ctx, self.card
        today = ctx.when.date()
        try:
            ca = ctx.ca_keys.get(ctx.aid[:5], card[Tag.CA_PUBLIC_KEY_INDEX][0], today=today)
            issuer = recover_issuer_key(
                ca,
                card[Tag.ISSUER_PUBLIC_KEY_CERTIFICATE],
                card.get(Tag.ISSUER_PUBLIC_KEY_REMAINDER),
                card[Tag.ISSUER_PUBLIC_KEY_EXPONENT],
                card[Tag.PAN],
                today,
            )
            static = build_static_data(
                oda_records, aip=self.aip, sda_tag_list=card.get(Tag.SDA_TAG_LIST)
            )
            icc = recover_icc_key(
                issuer,
                card[Tag.ICC_PUBLIC_KEY_CERTIFICATE],
                card.get(Tag.ICC_PUBLIC_KEY_REMAINDER),
                card[Tag.ICC_PUBLIC_KEY_EXPONENT],
                card[Tag.PAN],
                static,
                today,
            )
            result = verify_cda(
                icc,
                response,
                unpredictable_number=self.un,
                pdol_data=self.pdol_data,
                cdol1_data=self.cdol1_data,
            )
        except (EmvWireError, KeyError, IndexError) as exc:
            self.tvr.set("cda_failed")
            self.oda = OdaResult.FAILED
            what = scrub(str(exc)) if isinstance(exc, EmvWireError) else "certificate data missing"
            self._why(f"CDA failed: {what}")
            return
        card[Tag.APPLICATION_CRYPTOGRAM] = result.cryptogram
        card[Tag.ICC_DYNAMIC_NUMBER] = result.icc_dynamic_number
        self.oda = OdaResult.PASSED


#: AC types ordered by how much they commit the issuer (Book 3 §6.5.5.4: the card may
#: answer the type asked or a lower one; AAC < ARQC < TC).
_AC_RANK: Final = {AAC: 0, ARQC: 1, TC: 2}


def _cvm_required(ctx: KernelContext, db: Mapping[int, bytes]) -> bool:
    """Whether a CVM is required: the entry point's indicator, or Book C-2's rule with
    the Reader CVM Required Limit ``DF8126`` of the kernel data (amount above it)."""
    if ctx.indicators.cvm_required_limit_exceeded:
        return True
    limit = _amount(db.get(Tag.READER_CVM_REQUIRED_LIMIT))
    return limit is not None and ctx.transaction.amount > limit


def _amount(value: bytes | None) -> int | None:
    """An amount of format n (BCD) as an int, ``None`` if absent or not BCD."""
    if not value:
        return None
    text = value.hex()
    return int(text) if text.isdigit() else None


#: Mastercard kernel 2, EMV mode (module docstring), as the registry loads it
#: (:data:`terminal.kernel.registry.BUILTIN_KERNEL_MODULES`).
KERNEL: Final = FlowKernel(b"\x02", NAME, _Flow)
