"""General requirements: kernels by id (Book B §3.3.2.5, §3.4.1), the default kernel of
each RID (Book B Table 3-6), the outcome and UI request encodings (Book A Tables 6.1
and 9.1), the record, the public API and the ``terminal entry-point`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from card.scripted import ScriptedCard, ScriptError, encode_outcome, encode_ui_request
from terminal.cli import cli
from terminal.kernel.config import default_config
from terminal.kernel.conformance import TestKernel, decode_outcome, scripted_registry
from terminal.kernel.entry_point import run_entry_point
from terminal.kernel.outcome import (
    CvmOutcome,
    OnlineResponse,
    Outcome,
    OutcomeParameters,
    Start,
    Status,
    UiMessage,
    UiRequest,
    ValueQualifier,
)
from terminal.kernel.registry import check_kernel_id, default_registry, kernel_id_kind
from terminal.kernel.transaction import Transaction
from terminal.readers.emulated import EmulatedReader
from tests.terminal.entry_point.harness import (
    CASES,
    RID_DEFAULTS,
    VISA,
    WHEN,
    Case,
    app,
    card,
    check,
    combo,
    config,
    entry,
    fixture_card,
    outcome,
    run_and_check,
    run_case,
    run_case_file,
    ui,
)

VISA_PAN = "4761739001010010"


# --- kernels by id ------------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["01", "02", "03", "04", "05", "06", "07"])
def test_each_international_kernel_id_activates_the_kernel_registered_under_it(kid: str) -> None:
    aid = f"A0000009{kid}1010"  # a RID with no default: only the 9F2A decides
    case = Case(
        config(combo(aid, kid), *(combo(aid, k) for k in ("01", "02", "03") if k != kid)),
        card([entry(aid, kernel_id=kid)], {aid: app("9F6604")}),
        kernels=["01", "02", "03", "04", "05", "06", "07"],
    )
    run_and_check(
        case,
        {
            "activations": [{"kernel_id": kid, "kernel": f"test kernel {kid}", "aid": aid}],
            "outcome": {"outcome": "approved"},
        },
    )


@pytest.mark.parametrize(
    ("kid", "kind"), [("812345", "emvco domestic"), ("C1ABCD", "proprietary domestic")]
)
def test_a_three_byte_domestic_kernel_id_activates_the_domestic_kernel(kid: str, kind: str) -> None:
    assert kernel_id_kind(bytes.fromhex(kid)) == kind
    case = Case(
        config(combo("A000000999", kid), combo("A000000999", "03")),
        card([entry("A0000009990001", kernel_id=kid + "FF")]),  # bytes past 3 ignored
    )
    run_and_check(case, {"activations": [{"kernel_id": kid}], "outcome": {"outcome": "approved"}})


@pytest.mark.parametrize(("rid", "kid"), sorted(RID_DEFAULTS.items()))
def test_without_kernel_identifier_the_default_kernel_of_the_rid_is_requested(
    rid: str, kid: str
) -> None:
    aid = rid + "1010"
    others = [combo(aid, k) for k in ("02", "03", "04", "05", "06", "07") if k != kid]
    case = Case(config(*others, combo(aid, kid)), card([entry(aid)]))
    run_and_check(case, {"activations": [{"kernel_id": kid, "aid": aid}]})


@pytest.mark.parametrize(
    "bad", ["00", "40", "7F", "0102", "012345", "402345", "800000", "01020304"]
)
def test_the_registry_refuses_kernel_ids_no_combination_can_name(bad: str) -> None:
    with pytest.raises(ValueError, match="kernel id"):
        check_kernel_id(bytes.fromhex(bad))
    with pytest.raises(ValueError, match="kernel id"):
        TestKernel(bytes.fromhex(bad))


def test_scripted_registry_adds_test_kernels_only_for_ids_the_base_lacks() -> None:
    registry = scripted_registry([b"\x02", b"\x03", b"\x05", bytes.fromhex("C10101")],
                                 base=default_registry())  # fmt: skip
    names = {k.kernel_id.hex(): k.name for k in registry}
    assert names["03"] == "kernel 3 (Visa qVSDC)"
    assert names["02"].startswith("kernel 2")
    assert names["04"].startswith("kernel 4")
    assert isinstance(registry.get(b"\x05"), TestKernel)
    assert isinstance(registry.get(bytes.fromhex("C10101")), TestKernel)


# --- the encodings the card scripts and the test kernel reads ------------------------------


def test_a_ui_request_survives_encoding_and_decoding_with_every_field() -> None:
    request = UiRequest(UiMessage.APPROVED, Status.CARD_READ_SUCCESSFULLY, 2500, "fr",
                        123456, bytes.fromhex("0978"))  # fmt: skip
    assert UiRequest.decode(request.encode()) == request
    scripted = encode_ui_request(
        {
            "message": "03",
            "status": "card_read_successfully",
            "hold_time_ms": 2500,
            "language": "fr",
            "value": 123456,
            "currency": "0978",
        }
    )
    assert scripted == request.encode()
    assert UiRequest.decode(UiRequest(UiMessage.PRESENT_CARD).encode()).value is None


def test_a_ui_request_tells_an_amount_from_a_balance() -> None:
    """Book A Table 9.1: the Value Qualifier says what the value is."""
    balance = UiRequest(UiMessage.APPROVED, value=4250, qualifier=ValueQualifier.BALANCE)
    assert balance.encode()[13] == 0x20
    assert UiRequest.decode(balance.encode()) == balance
    assert balance.to_json()["value_qualifier"] == "balance"
    amount = UiRequest(UiMessage.PRESENT_CARD, value=1000)
    assert amount.encode()[13] == 0x10
    assert amount.to_json()["value_qualifier"] == "amount"
    assert UiRequest(UiMessage.PRESENT_CARD).to_json()["value_qualifier"] is None
    scripted = encode_ui_request({"message": "03", "value": 4250, "qualifier": "balance"})
    assert UiRequest.decode(scripted).value_qualifier is ValueQualifier.BALANCE
    with pytest.raises(ValueError, match="22 bytes"):
        UiRequest.decode(b"\x03\x04")


def test_an_outcome_parameter_set_survives_encoding_and_decoding() -> None:
    params = OutcomeParameters(
        Outcome.ONLINE_REQUEST,
        Start.B,
        online_response_data=True,
        online_response=OnlineResponse.ANY,
        cvm=CvmOutcome.ONLINE_PIN,
        data_record=True,
        receipt=True,
        alternate_interface=0x1,
        field_off_request_ms=1500,
        removal_timeout_ms=3000,
    )
    assert OutcomeParameters.decode(params.encode()) == params
    assert params.encode() == bytes.fromhex("3010102028 1F 0F 1E".replace(" ", ""))


def test_the_card_scripted_outcome_is_what_the_test_kernel_reads() -> None:
    body = encode_outcome(
        outcome("try_again", start="B", ui_on_outcome=ui("21", "ready_to_read"),
                ui_on_restart=ui("15", "ready_to_read", hold_time_ms=1000), field_off_ms=500)
    )  # fmt: skip
    params = decode_outcome(body)
    assert params.outcome is Outcome.TRY_AGAIN
    assert params.start is Start.B
    assert params.ui_on_outcome == UiRequest(UiMessage.PRESENT_CARD_AGAIN, Status.READY_TO_READ)
    assert params.ui_on_restart is not None
    assert params.ui_on_restart.hold_time_ms == 1000
    assert params.field_off_request_ms == 500


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"schema": "x"}, "schema"),
        ({"schema": "tapstack.scripted-card/1", "ppse": {"sw": "90"}}, "ppse.sw"),
        (
            {"schema": "tapstack.scripted-card/1", "applications": {"A000": {"outcomes": [{}]}}},
            "applications.A000.outcomes[0]",
        ),
        (
            {
                "schema": "tapstack.scripted-card/1",
                "applications": {"A0000000031010": {"outcomes": [{"outcome": "won"}]}},
            },
            "applications.A0000000031010.outcomes[0].outcome",
        ),
        ({"schema": "tapstack.scripted-card/1", "events": {"explode": 1}}, "events"),
        ({"schema": "tapstack.scripted-card/1", "events": {"away_ms": -5}}, "events.away_ms"),
        (
            {"schema": "tapstack.scripted-card/1", "events": {"mute_after": "2"}},
            "events.mute_after",
        ),
    ],
)
def test_a_malformed_scripted_card_is_refused_with_the_place_of_the_problem(
    doc: dict[str, object], where: str
) -> None:
    with pytest.raises(ScriptError) as caught:
        ScriptedCard(doc)
    assert caught.value.path == where


# --- the record and the public API ----------------------------------------------------------


def test_the_record_is_json_and_tells_no_pan_nor_track_2() -> None:
    visa = fixture_card("visa-card")
    record = run_entry_point(
        default_config(), EmulatedReader(visa), Transaction(6000), clock=lambda: WHEN
    )
    text = json.dumps(record.to_json())
    assert VISA_PAN not in text
    assert "D30" not in text.upper()  # no track 2 separator and expiry either
    data = json.loads(text)
    assert [e["command"] for e in data["exchanges"]] == [
        "SELECT", "SELECT", "GET PROCESSING OPTIONS"
    ]  # fmt: skip
    assert data["outcome"]["outcome"] == "online request"
    assert data["kernel"] == "kernel 3 (Visa qVSDC)"


def test_a_case_runs_the_same_from_json_files_and_from_builders() -> None:
    cfg = json.loads((CASES / "visa-config.json").read_text())
    scripted = json.loads((CASES / "visa-online-issuer-update.json").read_text())
    built = Case(cfg, scripted, amount=6000, online=bytes.fromhex("910A11223344556677883030"))
    record = run_case(built)
    check(
        record,
        {
            "restarts": 1,
            "activations": [
                {"restart": False},
                {"restart": True, "online_response": "910A11223344556677883030"},
            ],
            "outcome": {"outcome": "approved"},
        },
    )


@pytest.mark.parametrize("path", sorted(CASES.glob("case-*.json")), ids=lambda p: p.stem)
def test_each_case_file_gives_its_expected_record(path: Path) -> None:
    run_case_file(path)


# --- the command line -------------------------------------------------------------------------


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _visa_entry_point(card: str, amount: str, *extra: str) -> tuple[int, str, str]:
    """``terminal entry-point`` with cases/visa-config.json and the scripted card
    cases/``card``."""
    return _cli("entry-point", "--config", str(CASES / "visa-config.json"),
                "--card", str(CASES / card), "--amount", amount, *extra)  # fmt: skip


def test_the_command_prints_the_record_as_json_and_exits_0_for_an_approval() -> None:
    code, out, _ = _visa_entry_point(
        "visa-online-issuer-update.json", "60.00",
        "--online-response", "910A11223344556677883030", "--json",
    )  # fmt: skip
    assert code == 0, out
    data = json.loads(out)
    # the restart at B with the issuer's data selects the same application straight
    # away, without the PPSE (Book B §3.3.2.1)
    assert [s["name"] for s in data["selects"]] == ["2PAY.SYS.DDF01", VISA, VISA]
    assert data["activations"][1]["online_response"] == "910A11223344556677883030"
    assert data["outcome"]["outcome"] == "approved"


def test_the_command_without_online_response_ends_with_the_online_request() -> None:
    code, out, _ = _visa_entry_point("visa-online-issuer-update.json", "60.00")
    assert code == 0
    assert "OUTCOME ONLINE REQUEST" in out
    assert "event: online (response None)" in out


def test_the_command_exits_8_with_the_record_for_another_outcome() -> None:
    """End application is no decline: the card could not complete (exit 8)."""
    code, out, err = _visa_entry_point("ppse-not-found.json", "1.00")
    assert code == 8
    assert "SELECT 2PAY.SYS.DDF01 -> 6A82" in out
    assert "end application" in err


def test_the_command_refuses_bad_input_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "tapstack.terminal-config/1", "combinations": []}')
    code, _, err = _cli("entry-point", "--config", str(bad), "--card",
                        str(CASES / "ppse-not-found.json"), "--amount", "1")  # fmt: skip
    assert code == 10  # a configuration that does not load
    assert "combinations" in err
    code, _, err = _cli("entry-point", "--card", str(tmp_path / "none.json"), "--amount", "1")
    assert code == 9  # no card profile there: the reader cannot be opened
    assert "none.json" in err
    code, _, err = _cli("entry-point", "--card", str(CASES / "ppse-not-found.json"),
                        "--amount", "1.234")  # fmt: skip
    assert code == 2
    assert "decimals" in err
    code, _, err = _cli("entry-point", "--amount", "1")
    assert code == 2
    assert "exactly one of --card" in err
    assert "Traceback" not in err


def test_the_scripted_card_answers_as_its_profile_says() -> None:
    from card.scripted import CardCollision
    from card.transport import CardRemoved
    from emvwire.apdu import select

    scripted = ScriptedCard(
        card(
            [entry(VISA, priority="01")],
            {VISA: app("9F6604", [outcome("declined"), outcome("approved")])},
            commands=[{"apdu": "80CA9F17", "answers": ["9F1701039000", "6A88"]}],
            events={"collisions": 1, "remove_after": 4},
        )
    )
    with pytest.raises(CardCollision):
        scripted.power_on()
    scripted.power_on()
    assert scripted.process(bytes.fromhex("80A8000002830000")) == b"\x69\x85"  # none selected
    assert scripted.process(select(bytes.fromhex("A0000000999999")).encode()) == b"\x6a\x82"
    assert scripted.process(select(bytes.fromhex(VISA)).encode())[-2:] == b"\x90\x00"
    first = scripted.process(bytes.fromhex("80A8000002830000"))
    assert decode_outcome(first[:-2]).outcome is Outcome.DECLINED
    with pytest.raises(CardRemoved):  # the fifth command: the card left the field
        scripted.process(bytes.fromhex("80CA9F1700"))
    scripted.power_on()  # presented again, nothing selected
    assert scripted.process(bytes.fromhex("80CA9F1700")) == bytes.fromhex("9F1701039000")
    assert scripted.process(bytes.fromhex("80CA9F1700")) == bytes.fromhex("6A88")
    assert scripted.process(bytes.fromhex("80CA9F1700")) == bytes.fromhex("6A88")  # last repeats
    assert scripted.process(bytes.fromhex("00B2010C00")) == b"\x6d\x00"
    assert scripted.process(select(bytes.fromhex(VISA)).encode())[-2:] == b"\x90\x00"
    second = scripted.process(bytes.fromhex("80A8000002830000"))
    assert decode_outcome(second[:-2]).outcome is Outcome.APPROVED
    assert scripted.activations == 2


def test_card_serve_takes_a_scripted_profile_on_vpcd_only_and_without_faults() -> None:
    from card.cli import cli as card_cli

    profile = str(CASES / "ppse-not-found.json")
    nfc = CliRunner().invoke(card_cli, ["serve", profile, "--via", "nfc"])
    assert nfc.exit_code == 2
    assert "--via pcsc" in nfc.output
    faulty = CliRunner().invoke(card_cli, ["serve", profile, "--via", "pcsc", "--wrong-key"])
    assert faulty.exit_code == 2
    assert "do not apply to a scripted card" in faulty.output
    broken = CliRunner().invoke(card_cli, ["serve", str(CASES / "visa-config.json"),
                                           "--via", "pcsc"])  # fmt: skip
    assert broken.exit_code == 2  # not a card profile of either kind: a clear error
    assert "Traceback" not in broken.output


def test_the_command_runs_a_case_of_several_transactions_and_checks_each_record() -> None:
    code, out, _ = _cli("entry-point", "--case", str(CASES / "case-a-9.4-card-read-ok.json"),
                        "--json")  # fmt: skip
    assert code == 0, out
    data = json.loads(out)
    assert data["passed"] is True
    assert [t["mismatches"] for t in data["transactions"]] == [[], []]
    shown = [[u["message"] for u in t["record"]["ui"]] for t in data["transactions"]]
    assert shown == [["15", "1B", "17"], ["15", "1B", "17"]]
    code, out, _ = _cli("entry-point", "--case", str(CASES / "case-3.5-restart-a.json"))
    assert code == 0, out
    assert "event: restart (start A)" in out
    assert out.count("SELECT 2PAY.SYS.DDF01 -> 9000") == 2
    assert out.rstrip().endswith("as expected")


def test_the_command_exits_4_when_a_record_differs_from_the_case(tmp_path: Path) -> None:
    doc = json.loads((CASES / "case-3.3.2.1-restart-b-online-response.json").read_text())
    doc["config"] = str(CASES / "visa-config.json")
    doc["expected"]["outcome"] = {"outcome": "declined"}
    case_file = tmp_path / "case.json"
    case_file.write_text(json.dumps(doc))
    code, out, err = _cli("entry-point", "--case", str(case_file))
    assert code == 4
    assert "MISMATCH record.outcome.outcome: expected 'declined', got 'approved'" in out
    assert "1 of 1 transactions differ" in err
    code, out, _ = _cli("entry-point", "--case", str(case_file), "--json")
    assert code == 4
    data = json.loads(out)
    assert data["passed"] is False
    assert data["error"]["code"] == "conflict"


def test_the_command_refuses_a_case_with_options_of_its_own_or_a_broken_case(
    tmp_path: Path,
) -> None:
    case_file = str(CASES / "case-3.5-restart-a.json")
    code, _, err = _cli("entry-point", "--case", case_file, "--card", case_file)
    assert code == 2
    assert "drop --card" in err
    broken = tmp_path / "broken.json"
    broken.write_text('{"config": "nowhere.json", "card": {}}')
    code, _, err = _cli("entry-point", "--case", str(broken))
    assert code == 10
    assert "nowhere.json" in err
    assert "Traceback" not in err


def test_the_command_runs_the_configured_autorun_transaction() -> None:
    code, out, _ = _cli("entry-point", "--config", str(CASES / "per-type-config.json"),
                        "--card", str(CASES / "visa-online-issuer-update.json"), "--autorun",
                        "--json")  # fmt: skip
    assert code == 0, out
    data = json.loads(out)
    assert data["start"] == "B"
    assert data["activations"][0]["transaction"]["9F02"] == "000000000150"
    assert data["ui"][0]["value"] == 150
    code, _, err = _visa_entry_point("visa-online-issuer-update.json", "1.00")
    assert code == 0
    code, _, err = _cli("entry-point", "--config", str(CASES / "visa-config.json"),
                        "--card", str(CASES / "ppse-not-found.json"), "--autorun")  # fmt: skip
    assert code == 2
    assert "no autorun transaction" in err
