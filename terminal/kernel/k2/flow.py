"""Mastercard kernel 2 in EMV mode (EMV Contactless Book C-2), from GPO to the outcome.

The entry point (:mod:`terminal.kernel.entry_point`) has selected a Mastercard
application and activates :data:`KERNEL` with a
:class:`~terminal.kernel.registry.KernelContext`. The flow (Book C-2 §6 states S1-S10,
with the decisions of :mod:`terminal.kernel.k2.rules`):

1. **FCI and PDOL.** The PDOL (``9F38``) of the FCI is filled from the terminal data,
   the combination's kernel data, the transaction, the Unpredictable Number drawn from
   the context's CSPRNG, and Terminal Capabilities ``9F33`` built from ``DF8117``,
   ``DF8118``/``DF8119`` and ``DF811F`` (Book C-2 §6.3). A malformed FCI or PDOL: Select
   Next.
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
   for offline data authentication are kept for the static data (Book 3 §10.3).
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
from dataclasses import dataclass, field
from typing import Final

from emvwire import contract, dol, tlv
from emvwire.apdu import (
    CDA_REQUESTED,
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
from emvwire.track2 import track2_pan
from terminal.kernel.k2.rules import (
    AC_AAC,
    AC_ARQC,
    AC_TC,
    KERNEL_CONFIG_BITS,
    RRP_NOT_PERFORMED,
    RRP_PERFORMED,
    CvmSelection,
    RelayLimits,
    RelayVerdict,
    Tvr,
    action_analysis,
    aip_has,
    brand_consistent,
    is_online_capable,
    judge_relay,
    parse_relay_response,
    processing_restrictions,
    select_cvm,
    terminal_capabilities,
)
from terminal.kernel.outcome import Outcome, Status, UiMessage
from terminal.kernel.registry import KernelContext
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
    "Kernel2",
]

NAME: Final = "kernel 2 (Mastercard M/Chip)"

#: Field 55 of a kernel 2 authorisation (ICC system related data): the shared list of
#: :data:`emvwire.contract.FIELD_55_TAGS` less the Visa-only 9F66 and 9F6C,
#: which mean other things in kernel 2 (Book C-2 Annex A).
FIELD_55_TAGS: Final[tuple[int, ...]] = tuple(
    t for t in contract.FIELD_55_TAGS if t not in (0x9F66, 0x9F6C)
)

#: Data objects the card must give before GENERATE AC (Book C-2 §7.3; Book 3 §7.2).
MANDATORY_CARD_DATA: Final[Mapping[int, str]] = {
    0x5A: "PAN (5A)",
    0x5F24: "application expiration date (5F24)",
    0x8C: "CDOL1 (8C)",
}
#: What CDA needs from the records (Book 2 §6.1): CA key index, issuer certificate and
#: exponent, ICC certificate and exponent.
CDA_CARD_DATA: Final[tuple[int, ...]] = (0x8F, 0x90, 0x9F32, 0x9F46, 0x9F47)
#: Status word of GPO asking for another application (Book C-2 §6.3, Book 3 §6.5.8.4).
SW_SELECT_NEXT: Final = 0x6985
#: Largest DOL data a short C-APDU can carry (GPO wraps PDOL data in 83 L).
_MAX_PDOL_DATA: Final = 252
_MAX_CDOL_DATA: Final = 255
#: POS Cardholder Interaction Information (DF4B) bits asking the cardholder to act on
#: the phone (Book C-2 Annex A; the default Phone Message Table DF8131): byte 2 bits
#: 4-1 and byte 3 bit 1.
_PCII_SEE_PHONE: Final = (0x000F01).to_bytes(3, "big")


class _EndError(Exception):
    """Unwinds the flow to its outcome (never leaves this module)."""

    def __init__(
        self,
        outcome: Outcome,
        reason: str,
        *,
        message: UiMessage | None = None,
    ) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.message = message


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


@dataclass(slots=True)
class _Flow:
    """One kernel 2 transaction: the data gathered so far and the decisions made."""

    ctx: KernelContext
    db: dict[int, bytes]  # terminal-side data objects (and what the kernel computes)
    fci: dict[int, bytes]  # data objects of the FCI (the entry point's SELECT)
    card: dict[int, bytes]  # data objects the card gave in GPO, records, GENERATE AC
    tvr: Tvr
    kernel_config: int
    un: bytes
    aip: bytes = b""
    pdol_data: bytes = b""
    cdol1_data: bytes = b""
    pan: str = ""
    cda: bool = False
    cvm: Cvm = Cvm.NOT_DETERMINED
    receipt: bool = False
    oda: OdaResult = OdaResult.NOT_PERFORMED
    reasons: list[str] = field(default_factory=list)

    # --- sequencing ----------------------------------------------------------------

    def run(self) -> TransactionResult:
        try:
            outcome, message = self._run()
            reason = ""
        except _EndError as end:
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
        self.ctx.note(f"kernel 2: {outcome.label}" + (f": {reason}" if reason else ""))
        data = {**self.fci, **self.card, **self.db, 0x95: self.tvr.value}
        return self.ctx.result(
            outcome,
            kernel=NAME,
            reasons=reasons,
            data=data,
            cvm=self.cvm,
            oda=self.oda,
            oda_method="CDA" if self.cda else "",
            tvr=self.tvr.value,
            field55_tags=FIELD_55_TAGS,
            pan=self.pan,
            psn=self.card.get(0x5F34),
            token=0x9F19 in self.card,
            message=message,
            receipt=self.receipt,
        )

    def _why(self, text: str) -> None:
        self.reasons.append(text)
        self.ctx.note(f"kernel 2: {text}")

    def _run(self) -> tuple[Outcome, UiMessage | None]:
        ctx = self.ctx
        pdol = self._read_fci()
        with ctx.step("gpo"):
            afl = self._gpo(pdol)
        self._check_mode_and_limit()
        if aip_has(self.aip, "relay_resistance") and (
            self.kernel_config & KERNEL_CONFIG_BITS["relay_resistance"]
        ):
            with ctx.step("relay_resistance"):
                self._relay_resistance()
        else:
            self.tvr.set_relay_resistance(RRP_NOT_PERFORMED)
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
            objects = tlv.decode(self.ctx.fci)
        except DecodeError as exc:
            raise _EndError(Outcome.SELECT_NEXT, f"FCI is malformed: {exc.message}") from None
        for obj in _primitives(objects):
            self.fci.setdefault(obj.tag, obj.value)
        return self.fci.get(0x9F38, b"")

    # --- 2. GET PROCESSING OPTIONS -------------------------------------------------

    def _gpo(self, pdol: bytes) -> list[AflEntry]:
        try:
            self.pdol_data = dol.build(pdol, self.db, kernel=2) if pdol else b""
        except EmvWireError as exc:
            raise _EndError(Outcome.SELECT_NEXT, f"PDOL is malformed: {exc}") from None
        if len(self.pdol_data) > _MAX_PDOL_DATA:
            raise _EndError(Outcome.SELECT_NEXT, f"PDOL asks for {len(self.pdol_data)} bytes")
        self.db[0xDF8111] = self.pdol_data
        r = self.ctx.exchange(get_processing_options(self.pdol_data))
        if r.sw == SW_SELECT_NEXT:
            raise _EndError(Outcome.SELECT_NEXT, "GPO: conditions of use not satisfied (6985)")
        if not r.ok:
            raise _EndError(Outcome.END_APPLICATION, f"GPO answered {_sw(r)}")
        if r.data[:1] == b"\x80":
            value = self._template(r.data, 0x80, "GPO").value
            if len(value) < 2 or (len(value) - 2) % 4:
                raise _EndError(Outcome.END_APPLICATION, "GPO format 1 answer is not AIP || AFL")
            self._store({0x82: value[:2], 0x94: value[2:]}, "GPO")
        else:
            template = self._template(r.data, 0x77, "GPO")
            self._store_objects(template.children, "GPO")
        if 0x82 not in self.card or 0x94 not in self.card:
            raise _EndError(Outcome.END_APPLICATION, "GPO answer lacks the AIP (82) or AFL (94)")
        self.aip = self.card[0x82]
        if len(self.aip) != 2:
            raise _EndError(Outcome.END_APPLICATION, "the AIP (82) is not 2 bytes")
        try:
            return parse_afl(self.card[0x94])
        except DecodeError as exc:
            raise _EndError(
                Outcome.END_APPLICATION, f"AFL (94) is malformed: {exc.message}"
            ) from None

    @staticmethod
    def _template(data: bytes, tag: int, what: str) -> tlv.Tlv:
        try:
            return tlv.decode_one(data, tag)
        except DecodeError as exc:
            raise _EndError(
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
                raise _EndError(
                    Outcome.END_APPLICATION,
                    f"{what}: the card gave data object {tlv.tag_hex(tag)} twice",
                )
            self.card[tag] = value

    # --- 3. EMV mode and transaction limit -----------------------------------------

    def _check_mode_and_limit(self) -> None:
        if not aip_has(self.aip, "emv_mode") or (
            self.kernel_config & KERNEL_CONFIG_BITS["emv_mode_not_supported"]
        ):
            raise _EndError(
                Outcome.TRY_ANOTHER_INTERFACE,
                "the card offers no EMV mode; mag-stripe mode is never used",
            )
        odcvm = aip_has(self.aip, "on_device_cvm") and bool(
            self.kernel_config & KERNEL_CONFIG_BITS["on_device_cvm"]
        )
        limit_tag = 0xDF8125 if odcvm else 0xDF8124
        limit = _amount(self.db.get(limit_tag))
        if limit is not None and self.ctx.transaction.amount > limit:
            raise _EndError(
                Outcome.TRY_ANOTHER_INTERFACE,
                f"amount above the reader contactless transaction limit ({limit_tag:X})",
            )

    # --- 4. relay resistance -------------------------------------------------------

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
                raise _EndError(Outcome.END_APPLICATION, f"EXCHANGE RELAY RESISTANCE DATA {_sw(r)}")
            try:
                card = parse_relay_response(r.data)
            except DecodeError as exc:
                raise _EndError(
                    Outcome.END_APPLICATION, f"relay resistance: {exc.message}"
                ) from None
            judged = judge_relay(elapsed_us, card, limits, retries)
            ctx.note(
                f"kernel 2: relay resistance {elapsed_us} us, measured {judged.measured}"
                f" x 100 us (card {card.min_time}-{card.max_time}): {judged.verdict.value}"
            )
            if judged.verdict is RelayVerdict.ABORT:
                raise _EndError(
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
        self.db[0x9F37] = entropy
        self.db[0xDF8301] = entropy
        self.db.update(card.data_objects())
        self.db[0xDF8306] = min(judged.measured, 0xFFFF).to_bytes(2, "big")
        self.db[0xDF8307] = bytes((retries,))
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
        oda: list[tuple[int, bytes]] = []
        for entry in afl:
            for number in range(entry.first, entry.last + 1):
                r = self.ctx.exchange(read_record(entry.sfi, number))
                where = f"record {number} of SFI {entry.sfi}"
                if not r.ok:
                    raise _EndError(
                        Outcome.END_APPLICATION, f"READ RECORD {where} answered {_sw(r)}"
                    )
                if entry.sfi <= 10:
                    template = self._template(r.data, 0x70, f"READ RECORD {where}")
                    self._store_objects(template.children, where)
                if number < entry.first + entry.oda_count:
                    oda.append((entry.sfi, r.data))
        return oda

    # --- 6. card checks ------------------------------------------------------------

    def _check_card_data(self) -> None:
        missing = [name for tag, name in MANDATORY_CARD_DATA.items() if not self.card.get(tag)]
        if missing:
            raise _EndError(Outcome.END_APPLICATION, "card data missing: " + ", ".join(missing))
        pan = _pan_digits(self.card[0x5A])
        if not pan:
            raise _EndError(Outcome.END_APPLICATION, "the PAN (5A) is not 1-19 digits")
        self.pan = pan
        if not brand_consistent(self.ctx.aid[:5], pan):
            raise _EndError(
                Outcome.DECLINED,
                f"card brand mixup: the PAN is outside the IIN ranges of AID "
                f"{self.ctx.aid.hex().upper()}",
            )
        track2 = self.card.get(0x57)
        if track2 is not None and not hmac.compare_digest(track2_pan(track2), pan):
            raise _EndError(Outcome.DECLINED, "inconsistent card data: track 2 PAN differs from 5A")

    # --- 7. ODA choice ---------------------------------------------------------------

    def _choose_oda(self) -> None:
        caps = self.db[0x9F33]
        if not (aip_has(self.aip, "cda") and len(caps) == 3 and caps[2] & 0x08):
            self.tvr.set("oda_not_performed")
            self._why("no CDA: offline data authentication not performed")
            return
        self.cda = True
        missing = [t for t in CDA_CARD_DATA if not self.card.get(t)]
        if missing:
            self.tvr.set("icc_data_missing")
            self._cda_failed("certificate data missing: " + ", ".join(map(tlv.tag_hex, missing)))
            return
        index = self.card[0x8F][0]
        key = self.ctx.ca_keys.find(self.ctx.aid[:5], index)
        if key is None:
            self._cda_failed(f"no CA public key {self.ctx.aid[:5].hex().upper()}/{index:02X}")
        elif key.expired(self.ctx.when.date()):
            self._cda_failed(f"CA public key {key.label} has expired")
        sda_tags = self.card.get(0x9F4A)
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
        terminal_type = self.db.get(0x9F35, b"")
        for name in processing_restrictions(
            self.card,
            terminal_version=self.db.get(0x9F09),
            terminal_country=self.db.get(0x9F1A),
            terminal_type=terminal_type,
            additional_capabilities=self.db.get(0x9F40),
            transaction_type=txn.type,
            other_amount=txn.other_amount,
            today=ctx.when.date(),
        ):
            self.tvr.set(name)
            self._why(name.replace("_", " "))
        cvm_required = _cvm_required(ctx, self.db)
        caps = terminal_capabilities(
            ctx.combination.kernel_data, cvm_required=cvm_required, configured=self.db[0x9F33]
        )
        self.db[0x9F33] = caps
        selection: CvmSelection = select_cvm(
            aip=self.aip,
            kernel_config=self.kernel_config,
            cvm_list=self.card.get(0x8E),
            cvm_required=cvm_required,
            capability=caps[1] if len(caps) == 3 else 0,
            amount=txn.amount,
            other_amount=txn.other_amount,
            transaction_type=txn.type,
            transaction_currency=self.db.get(0x5F2A, b""),
            application_currency=self.card.get(0x9F42),
            terminal_type=terminal_type,
        )
        self.cvm = selection.cvm
        self.receipt = selection.receipt
        self.db[0x9F34] = selection.results
        for name in selection.tvr:
            self.tvr.set(name)
        ctx.note(f"kernel 2: CVM {selection.cvm.value} ({selection.reason})")
        floor = _amount(self.db.get(0xDF8123))
        over_floor = ctx.indicators.floor_limit_exceeded or (
            floor is not None and txn.amount > floor
        )
        if over_floor:
            self.tvr.set("floor_limit_exceeded")

    def _action_analysis(self) -> int:
        decision = action_analysis(
            self.tvr.value,
            tac_denial=self.db.get(0xDF8121),
            tac_online=self.db.get(0xDF8122),
            tac_default=self.db.get(0xDF8120),
            iac_denial=self.card.get(0x9F0E),
            iac_online=self.card.get(0x9F0F),
            iac_default=self.card.get(0x9F0D),
            terminal_type=self.db.get(0x9F35, b""),
            transaction_type=self.ctx.transaction.type,
        )
        ac_type, reason = decision.ac_type, decision.reason
        if ac_type == AC_TC and self.tvr.has("cda_failed"):
            # tapstack policy: a card whose CDA already failed is never approved offline,
            # whatever the action codes say; it goes online, or is declined offline-only.
            online = is_online_capable(self.db.get(0x9F35, b""))
            ac_type = AC_ARQC if online else AC_AAC
            reason = "CDA failed before GENERATE AC: no offline approval"
        self._why(f"asked for {_AC_NAMES[ac_type]}: {reason}")
        return ac_type

    # --- 9. GENERATE AC -------------------------------------------------------------

    def _generate_ac(self, ac_type: int) -> tuple[int, bytes]:
        self.db[0x95] = self.tvr.value
        self.db[0x9F37] = self.un
        try:
            self.cdol1_data = dol.build(self.card[0x8C], self.db, kernel=2)
        except EmvWireError as exc:
            raise _EndError(Outcome.END_APPLICATION, f"CDOL1 (8C) is malformed: {exc}") from None
        if len(self.cdol1_data) > _MAX_CDOL_DATA:
            raise _EndError(Outcome.END_APPLICATION, f"CDOL1 asks for {len(self.cdol1_data)} bytes")
        self.db[0xDF8107] = self.cdol1_data
        signed = self.cda and ac_type != AC_AAC and not self.tvr.has("cda_failed")
        rcp = ac_type | (CDA_REQUESTED if signed else 0)
        self.db[0xDF8114] = bytes((rcp,))
        r = self.ctx.exchange(generate_ac(rcp, self.cdol1_data))
        if not r.ok:
            raise _EndError(Outcome.END_APPLICATION, f"GENERATE AC answered {_sw(r)}")
        answer: dict[int, bytes] = {}
        if r.data[:1] == b"\x80":
            value = self._template(r.data, 0x80, "GENERATE AC").value
            if len(value) < 11:
                raise _EndError(Outcome.END_APPLICATION, "GENERATE AC format 1 answer is too short")
            answer = {0x9F27: value[:1], 0x9F36: value[1:3], 0x9F26: value[3:11]}
            if len(value) > 11:
                answer[0x9F10] = value[11:]
        else:
            template = self._template(r.data, 0x77, "GENERATE AC")
            for obj in _primitives(template.children):
                if obj.tag in answer:
                    raise _EndError(
                        Outcome.END_APPLICATION,
                        f"GENERATE AC: data object {tlv.tag_hex(obj.tag)} given twice",
                    )
                answer[obj.tag] = obj.value
        cid = answer.get(0x9F27, b"")
        if len(cid) != 1 or len(answer.get(0x9F36, b"")) != 2:
            raise _EndError(Outcome.END_APPLICATION, "GENERATE AC answer lacks the CID or ATC")
        card_type = cid[0] & 0xC0
        if card_type == 0xC0:
            raise _EndError(Outcome.END_APPLICATION, "GENERATE AC: CID names an RFU AC type")
        if _AC_RANK[card_type] > _AC_RANK[ac_type]:
            raise _EndError(
                Outcome.END_APPLICATION,
                f"GENERATE AC: the card answered {_AC_NAMES[card_type]} to a request "
                f"for {_AC_NAMES[ac_type]}",
            )
        if 0x9F26 not in answer and not (signed and card_type != AC_AAC and 0x9F4B in answer):
            raise _EndError(
                Outcome.END_APPLICATION, "GENERATE AC answer lacks the cryptogram (9F26)"
            )
        for tag, value in answer.items():
            if tag != 0x9F4B:
                self.card[tag] = value
        return card_type, (r.data if signed else b"")

    # --- 10-11. CDA and the outcome ---------------------------------------------------

    def _finish(
        self, card_type: int, response: bytes, oda_records: list[tuple[int, bytes]]
    ) -> tuple[Outcome, UiMessage | None]:
        if card_type == AC_AAC:
            self._why(f"the card declined ({_AC_NAMES[AC_AAC]})")
            pcii = self.card.get(0xDF4B, b"")
            if len(pcii) == 3 and any(a & b for a, b in zip(pcii, _PCII_SEE_PHONE, strict=True)):
                raise _EndError(
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
        if card_type == AC_TC:
            return Outcome.APPROVED, None
        return Outcome.ONLINE_REQUEST, None

    def _verify_cda(self, response: bytes, oda_records: list[tuple[int, bytes]]) -> None:
        ctx, card = self.ctx, self.card
        today = ctx.when.date()
        try:
            ca = ctx.ca_keys.get(ctx.aid[:5], card[0x8F][0], today=today)
            issuer = recover_issuer_key(
                ca, card[0x90], card.get(0x92), card[0x9F32], card[0x5A], today
            )
            static = build_static_data(oda_records, aip=self.aip, sda_tag_list=card.get(0x9F4A))
            icc = recover_icc_key(
                issuer, card[0x9F46], card.get(0x9F48), card[0x9F47], card[0x5A], static, today
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
        card[0x9F26] = result.cryptogram
        card[0x9F4C] = result.icc_dynamic_number
        self.oda = OdaResult.PASSED


_AC_NAMES: Final = {AC_AAC: "AAC", AC_TC: "TC", AC_ARQC: "ARQC"}
#: AC types ordered by how much they commit the issuer (Book 3 §6.5.5.4: the card may
#: answer the type asked or a lower one; AAC < ARQC < TC).
_AC_RANK: Final = {AC_AAC: 0, AC_ARQC: 1, AC_TC: 2}


def _cvm_required(ctx: KernelContext, db: Mapping[int, bytes]) -> bool:
    """Whether a CVM is required: the entry point's indicator, or Book C-2's rule with
    the Reader CVM Required Limit ``DF8126`` of the kernel data (amount above it)."""
    if ctx.indicators.cvm_required_limit_exceeded:
        return True
    limit = _amount(db.get(0xDF8126))
    return limit is not None and ctx.transaction.amount > limit


def _amount(value: bytes | None) -> int | None:
    """An amount of format n (BCD) as an int, ``None`` if absent or not BCD."""
    if not value:
        return None
    text = value.hex()
    return int(text) if text.isdigit() else None


class Kernel2:
    """Mastercard kernel 2, EMV mode (module docstring). Stateless between taps."""

    @property
    def kernel_id(self) -> bytes:
        """Kernel id 02 (Book B §3.3.2.5)."""
        return b"\x02"

    @property
    def name(self) -> str:
        """``kernel 2 (Mastercard M/Chip)``."""
        return NAME

    def __repr__(self) -> str:
        return "Kernel2()"

    def activate(self, ctx: KernelContext) -> TransactionResult:
        """Run one transaction from the selected application to its outcome."""
        db = ctx.terminal_data()
        kernel_data = ctx.combination.kernel_data
        config = kernel_data.get(0xDF811B, b"\x00")
        db[0x9F33] = terminal_capabilities(
            kernel_data, cvm_required=None, configured=db.get(0x9F33)
        )
        flow = _Flow(
            ctx=ctx,
            db=db,
            fci={},
            card={},
            tvr=Tvr(),
            kernel_config=config[0] if config else 0,
            un=db[0x9F37],
        )
        return flow.run()


#: The instance the registry loads (:data:`terminal.kernel.registry.BUILTIN_KERNEL_MODULES`).
KERNEL: Final = Kernel2()
