"""Kernel 2 with the software Mastercard card and phone (fixtures/cards), through the
entry point and the emulated reader: outcomes, CVM, TVR, CDA, field 55, and what
happens when the card or the channel misbehaves."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from card.emv import EmvCard
from emvwire import tlv
from emvwire.crypto import CryptogramData, derive_icc_mk_a, verify_arqc
from emvwire.oda import CaKeyStore
from emvwire.profile import load_profile
from terminal.kernel.outcome import CvmOutcome, Outcome, UiMessage
from terminal.kernel.registry import default_registry
from terminal.kernel.transaction import Cvm, OdaResult, TransactionResult
from tests.terminal.kernel.kernel2_helpers import (
    CARDS,
    FIXTURES,
    CardReader,
    ScriptedReader,
    emulated,
    fixed_rng,
    fixture_card,
    gen_ac_data,
    kernel2_config,
    phone_with_on_device_cvm,
    phone_without_on_device_cvm,
    recertified,
    tap,
)

SELECT, GPO, ERRD, READ, GEN_AC = 0xA4, 0xA8, 0xEA, 0xB2, 0xAE
#: The commands of a plastic card's tap: PPSE, AID, GPO, relay resistance, the four
#: records of its AFL, GENERATE AC.
CARD_FLOW = [SELECT, SELECT, GPO, ERRD, READ, READ, READ, READ, GEN_AC]


def field55(result: TransactionResult) -> dict[int, bytes]:
    return tlv.flatten(tlv.decode(result.authorisation_data))


def issuer_verifies(result: TransactionResult, cvn: int, pan: str) -> None:
    """Check the ARQC with the test issuer master key from field 55 alone."""
    f = field55(result)
    imk = json.loads((FIXTURES / "issuer" / "test-master-keys.json").read_text())
    mk = derive_icc_mk_a(bytes.fromhex(imk["schemes"]["mastercard"]["ac"]), pan, "00")
    data = CryptogramData(
        tag_9f02=f[0x9F02],
        tag_9f03=f[0x9F03],
        tag_9f1a=f[0x9F1A],
        tag_95=f[0x95],
        tag_5f2a=f[0x5F2A],
        tag_9a=f[0x9A],
        tag_9c=f[0x9C],
        tag_9f37=f[0x9F37],
        tag_82=f[0x82],
        tag_9f36=f[0x9F36],
        tag_9f10=f[0x9F10],
    )
    verify_arqc(cvn, mk, data, f[0x9F26])


def test_kernel_2_is_registered_for_kernel_id_02() -> None:
    kernel = default_registry().get(b"\x02")
    assert kernel is not None
    assert kernel.name == "kernel 2 (Mastercard M/Chip)"


def test_card_under_the_cvm_limit_goes_online_without_cvm_with_cda() -> None:
    reader = CardReader(fixture_card("mastercard-card"))
    result = tap(reader, 1000)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert reader.ins_sent() == CARD_FLOW
    assert reader.sent[-1][2] == 0x90  # ARQC with CDA requested
    assert result.cvm is Cvm.NO_CVM
    assert result.parameters.cvm is CvmOutcome.NO_CVM
    assert result.data[0x9F34] == bytes.fromhex("1F0302")  # no CVM, if supported, successful
    assert result.oda is OdaResult.PASSED
    # floor limit 0 exceeded (TAC online), relay resistance performed
    assert result.tvr == bytes.fromhex("0000008002")
    assert result.apdu_count == 9
    assert result.kernel == "kernel 2 (Mastercard M/Chip)"
    assert result.masked_pan == "541333******1034"
    assert not result.token
    assert result.ui[-1].message is UiMessage.AUTHORISING
    issuer_verifies(result, 17, "5413330089601034")


def test_card_over_the_cvm_limit_asks_for_online_pin() -> None:
    result = tap(emulated(fixture_card("mastercard-card")), 9000)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.cvm is Cvm.ONLINE_PIN
    assert result.online_pin_required
    assert result.data[0x9F34] == bytes.fromhex("020300")  # online PIN, result unknown
    assert result.data[0x9F33] == bytes.fromhex("006008")  # CVM capability - CVM required
    assert result.tvr == bytes.fromhex("0000048002")  # online PIN entered
    assert result.ui[-1].message is UiMessage.PLEASE_ENTER_YOUR_PIN
    assert result.oda is OdaResult.PASSED
    issuer_verifies(result, 17, "5413330089601034")


def test_phone_with_on_device_cvm_over_the_limit_reports_cdcvm() -> None:
    card = fixture_card("", profile=phone_with_on_device_cvm())
    result = tap(emulated(card), 9000)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.cvm is Cvm.CDCVM
    assert result.parameters.cvm is CvmOutcome.CONFIRMATION_CODE_VERIFIED
    assert result.data[0x9F34] == bytes.fromhex("010002")
    assert result.tvr == bytes.fromhex("0000008002")  # no "online PIN entered"
    assert result.token
    assert result.masked_pan == "520474******1002"
    assert result.oda is OdaResult.PASSED
    assert result.apdu_count == 10  # the token record (SFI 4) as well
    issuer_verifies(result, 21, "5204740000001002")


def test_phone_with_on_device_cvm_under_the_limit_needs_no_cvm() -> None:
    card = fixture_card("", profile=phone_with_on_device_cvm())
    result = tap(emulated(card), 1000)
    assert result.cvm is Cvm.NO_CVM
    assert result.data[0x9F34] == bytes.fromhex("3F0002")


def test_phone_without_the_on_device_cvm_aip_bit_gets_the_cvm_list() -> None:
    """With AIP byte 1 bit 2 clear, kernel 2 cannot know the phone verifies its
    holder and follows the CVM list."""
    card = fixture_card("", profile=phone_without_on_device_cvm())
    result = tap(emulated(card), 9000)
    assert result.cvm is Cvm.ONLINE_PIN


def offline_card() -> EmvCard:
    """The Mastercard fixture with offline limits (5 taps, EUR 100.00)."""
    profile = load_profile(CARDS / "mastercard-card.json")
    app = replace(profile.applications[0], limits={"offline_count": 5, "offline_amount": 10_000})
    return EmvCard(replace(profile, applications=(app,)))


def test_card_without_offline_limits_answers_arqc_to_a_tc_request() -> None:
    reader = CardReader(fixture_card("mastercard-card"))
    result = tap(reader, 1000, config=kernel2_config(floor=50_000))
    assert reader.sent[-1][2] == 0x50  # TC with CDA
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.oda is OdaResult.PASSED


def test_offline_capable_reader_under_floor_approves_offline_with_cda() -> None:
    reader = CardReader(offline_card())
    result = tap(reader, 1000, config=kernel2_config(floor=50_000))
    assert reader.sent[-1][2] == 0x50  # TC with CDA
    assert result.outcome is Outcome.APPROVED
    assert result.tvr == bytes.fromhex("0000000002")
    assert result.oda is OdaResult.PASSED
    assert result.data[0x9F27] == b"\x40"


def test_refund_asks_for_an_aac_and_is_declined_offline() -> None:
    reader = CardReader(fixture_card("mastercard-card"))
    result = tap(reader, 1000, type=0x20)
    assert reader.sent[-1][2] == 0x00  # AAC, CDA not requested
    assert result.outcome is Outcome.DECLINED
    assert "asked for AAC: refund" in result.reasons


def test_unpredictable_number_comes_from_the_random_source() -> None:
    sent = []
    for _ in range(2):
        reader = CardReader(fixture_card("mastercard-card"))
        tap(reader, 1000)
        sent.append(reader.sent)
    # CDOL1: 9F02 6, 9F03 6, 9F1A 2, 95 5, 5F2A 2, 9A 3, 9C 1, then 9F37 4 at offset 25.
    uns = [gen_ac_data(s)[25:29] for s in sent]
    assert uns[0] != uns[1]
    reader = CardReader(fixture_card("mastercard-card"))
    tap(reader, 1000, rng=fixed_rng(bytes.fromhex("C0FFEE42")))
    errd = next(c for c in reader.sent if c[1] == ERRD)
    assert errd[5:9] == bytes.fromhex("C0FFEE42")  # relay resistance entropy = UN
    assert gen_ac_data(reader.sent)[25:29] == bytes.fromhex("C0FFEE42")


def test_without_the_ca_key_cda_fails_before_generate_ac_and_goes_online() -> None:
    reader = CardReader(fixture_card("mastercard-card"))
    result = tap(reader, 1000, config=kernel2_config(ca_keys=CaKeyStore()))
    assert reader.sent[-1][2] == 0x80  # ARQC without CDA: nothing could check it
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.oda is OdaResult.FAILED
    assert result.tvr[0] & 0x04  # CDA failed, which the online action code holds
    assert "CDA failed: no CA public key A000000004/99" in result.reasons


def _tamper_gen_ac(change: int, value: bytes) -> Callable[[bytes, bytes], bytes]:
    """A man in the middle that replaces one data object of the GENERATE AC answer."""

    def hook(c_apdu: bytes, answer: bytes) -> bytes:
        if c_apdu[1] != GEN_AC:
            return answer
        template = tlv.decode_one(answer[:-2], 0x77)
        body = b"".join(
            tlv.encode(o.tag, value if o.tag == change else o.value) for o in template.children
        )
        return tlv.encode(0x77, body) + answer[-2:]

    return hook


def test_changed_atc_in_the_signed_answer_fails_cda_and_declines() -> None:
    reader = CardReader(fixture_card("mastercard-card"), _tamper_gen_ac(0x9F36, b"\x00\x63"))
    result = tap(reader, 1000)
    assert result.outcome is Outcome.DECLINED
    assert result.oda is OdaResult.FAILED
    assert result.tvr[0] & 0x04
    assert "CDA failed: transaction data hash code does not match" in result.reasons


def test_cid_upgraded_from_arqc_to_tc_is_refused() -> None:
    """A relay turning the card's ARQC into a TC: a higher type than asked."""
    reader = CardReader(fixture_card("mastercard-card"), _tamper_gen_ac(0x9F27, b"\x40"))
    result = tap(reader, 1000)
    assert result.outcome is Outcome.END_APPLICATION
    assert "GENERATE AC: the card answered TC to a request for ARQC" in result.reasons


def test_cid_changed_from_tc_to_arqc_fails_cda() -> None:
    """The CID is under the CDA signature: a changed one fails even when its type is
    one the terminal would accept."""
    reader = CardReader(offline_card(), _tamper_gen_ac(0x9F27, b"\x80"))
    result = tap(reader, 1000, config=kernel2_config(floor=50_000))
    assert reader.sent[-1][2] == 0x50
    assert result.outcome is Outcome.DECLINED
    assert (
        "CDA failed: CID in the signature does not match the CID (9F27) in the response"
        in result.reasons
    )


def test_brand_mixup_mastercard_aid_with_a_visa_pan_is_declined() -> None:
    """Basin et al. 2021: a Visa card behind a Mastercard AID. Kernel 2 declines before
    GENERATE AC."""
    visa_pan = "4761739001010010"
    profile = load_profile(CARDS / "mastercard-card.json")
    app = profile.applications[0]
    data = dict(app.data)
    data[0x5A] = bytes.fromhex(visa_pan)
    data[0x57] = bytes.fromhex(visa_pan + "D30122010000000000")
    profile = replace(profile, applications=(replace(app, data=data, pan=visa_pan),))
    reader = CardReader(EmvCard(profile))
    result = tap(reader, 1000)
    assert result.outcome is Outcome.DECLINED
    assert GEN_AC not in reader.ins_sent()
    assert any("card brand mixup" in r for r in result.reasons)
    assert visa_pan not in repr(result)
    assert all(visa_pan not in r for r in result.reasons)


def test_track_2_with_another_pan_is_declined() -> None:
    profile = load_profile(CARDS / "mastercard-card.json")
    app = profile.applications[0]
    data = dict(app.data)
    data[0x57] = bytes.fromhex("5413330089601042D30122010000000000")
    profile = replace(profile, applications=(replace(app, data=data),))
    result = tap(CardReader(EmvCard(profile)), 1000)
    assert result.outcome is Outcome.DECLINED
    assert "inconsistent card data: track 2 PAN differs from 5A" in result.reasons


@pytest.mark.parametrize("pull_after", [2, 3, 5, 8])
def test_card_pulled_away_mid_tap_asks_to_try_again(pull_after: int) -> None:
    """pull_after=2: gone at GPO; 3: at relay resistance; 5: reading records; 8: at
    GENERATE AC."""
    profile = load_profile(CARDS / "mastercard-card.json").with_faults(pull_after=pull_after)
    reader = emulated(EmvCard(profile))
    result = tap(reader, 1000)
    assert result.outcome is Outcome.TRY_AGAIN
    assert result.parameters.ui_on_restart is not None
    assert result.parameters.ui_on_restart.message is UiMessage.PRESENT_CARD_AGAIN
    assert any("card removed" in r for r in result.reasons)


@pytest.mark.parametrize(
    ("faults", "reason"),
    [
        ({"wrong_sw": {GEN_AC: 0x6F00}}, "GENERATE AC answered 6F00"),
        ({"wrong_sw": {ERRD: 0x6D00}}, "EXCHANGE RELAY RESISTANCE DATA 6D00"),
        ({"wrong_sw": {READ: 0x6A83}}, "READ RECORD record 1 of SFI 1 answered 6A83"),
        ({"wrong_sw": {GPO: 0x6A81}}, "GPO answered 6A81"),
        ({"corrupt": {GEN_AC: "truncate"}}, "GENERATE AC answer is malformed"),
        ({"corrupt": {GEN_AC: "garble"}}, "GENERATE AC answer is malformed"),
        ({"corrupt": {READ: "garble"}}, "READ RECORD record 1 of SFI 1 answer is malformed"),
        ({"corrupt": {GPO: "truncate"}}, "GPO answer is malformed"),
        ({"corrupt": {ERRD: "truncate"}}, "relay resistance: relay resistance response"),
    ],
)
def test_wrong_status_words_and_corrupt_answers_end_the_application(
    faults: dict[str, dict[int, object]], reason: str
) -> None:
    profile = load_profile(CARDS / "mastercard-card.json").with_faults(**faults)
    result = tap(emulated(EmvCard(profile)), 1000)
    assert result.outcome is Outcome.END_APPLICATION
    assert any(r.startswith(reason) for r in result.reasons), result.reasons


def test_gpo_6985_selects_the_next_application() -> None:
    profile = load_profile(CARDS / "mastercard-card.json").with_faults(wrong_sw={GPO: 0x6985})
    trace: list[str] = []
    result = tap(emulated(EmvCard(profile)), 1000, trace=trace)
    assert "entry point: select next" in trace
    assert result.outcome is Outcome.END_APPLICATION  # no other application on the card


def test_a_record_repeating_a_data_object_ends_the_application() -> None:
    def hook(c_apdu: bytes, answer: bytes) -> bytes:
        if c_apdu[1] == READ and c_apdu[3] == 0x0C:  # SFI 1: add a second PAN
            body = tlv.decode_one(answer[:-2], 0x70).value
            return tlv.encode(0x70, body + tlv.encode(0x5A, bytes(8))) + answer[-2:]
        return answer

    result = tap(CardReader(fixture_card("mastercard-card"), hook), 1000)
    assert result.outcome is Outcome.END_APPLICATION
    assert "record 1 of SFI 2: the card gave data object 5A twice" in result.reasons


def test_reader_transaction_limit_of_the_kernel_data_sends_to_another_interface() -> None:
    config = kernel2_config(kernel={0xDF8124: bytes.fromhex("000000005000")})
    reader = CardReader(fixture_card("mastercard-card"))
    result = tap(reader, 6000, config=config)
    assert result.outcome is Outcome.TRY_ANOTHER_INTERFACE
    assert READ not in reader.ins_sent()


#: mock-msc-ms-mode (MohamedHassanNasr/emv, mock/, the transcript of a mag-stripe mode
#: card): PPSE, FCI with PDOL, and a GPO answer whose AIP 0000 offers no EMV mode.
MS_MODE = {
    0xA4: [
        "6F3D840E325041592E5359532E4444463031A52BBF0C28610C4F07A0000000041010870101610C4F07"
        "A0000000043060870103610A4F05B0123456788701099000",
        "6F3B8407A0000000041010A530870101500A4D6173746572436172645F2D06656E646566729F110101"
        "9F38089F02069F33039C01BF0C069F5D030000009000",
    ],
    0xA8: ["770A820200009404080101009000"],
}


def test_mag_stripe_mode_card_is_sent_to_another_interface_never_mag_stripe() -> None:
    """Roland and Langer 2013: no mag-stripe mode, so no COMPUTE CRYPTOGRAPHIC
    CHECKSUM a pre-play could exploit."""
    answers = {ins: [bytes.fromhex(a) for a in values] for ins, values in MS_MODE.items()}

    def card(c_apdu: bytes) -> bytes:
        queue = answers.get(c_apdu[1])
        return queue.pop(0) if queue else b"\x6d\x00"

    reader = ScriptedReader(card)
    result = tap(reader, 1500)
    assert result.outcome is Outcome.TRY_ANOTHER_INTERFACE
    assert reader.ins_sent() == [SELECT, SELECT, GPO]
    assert result.parameters.alternate_interface == 0x1  # contact chip, not mag-stripe
    assert "the card offers no EMV mode; mag-stripe mode is never used" in result.reasons


def test_phone_asking_for_on_device_verification_says_see_phone() -> None:
    """An AAC with POS Cardholder Interaction Information (DF4B) asking for OD-CVM."""

    def hook(c_apdu: bytes, answer: bytes) -> bytes:
        if c_apdu[1] != GEN_AC:
            return answer
        body = (
            tlv.encode(0x9F27, b"\x00")
            + tlv.encode(0x9F36, b"\x00\x07")
            + tlv.encode(0x9F26, bytes(8))
            + tlv.encode(0xDF4B, bytes.fromhex("000001"))
        )
        return tlv.encode(0x77, body) + b"\x90\x00"

    card = fixture_card("", profile=phone_with_on_device_cvm())
    result = tap(CardReader(card, hook), 9000)
    assert result.outcome is Outcome.END_APPLICATION
    assert result.ui[-1].message is UiMessage.SEE_PHONE


def test_recertified_profile_keeps_cda_valid() -> None:
    """The helper that changes card data re-issues the ICC certificate correctly."""
    profile = recertified(load_profile(CARDS / "mastercard-card.json"), DF8303=b"\x00\x01")
    result = tap(CardReader(EmvCard(profile)), 1000)
    assert result.oda is OdaResult.PASSED


def test_cda_failed_before_generate_ac_is_never_approved_offline() -> None:
    """Action codes that would let it through (no CDA failed bit anywhere): still no
    TC for a card whose certificates could not be checked."""
    lax = {0xDF8120: bytes(5), 0xDF8121: bytes(5), 0xDF8122: bytes(5)}
    config = kernel2_config(floor=50_000, kernel=lax, ca_keys=CaKeyStore())
    reader = CardReader(offline_card())
    result = tap(reader, 1000, config=config)
    assert reader.sent[-1][2] == 0x80  # ARQC, no CDA
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert "asked for ARQC: CDA failed before GENERATE AC: no offline approval" in result.reasons
