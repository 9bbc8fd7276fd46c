"""The terminal-issuer contract's codec: strict requests whose errors name the field,
lenient answers, and a body that is not a JSON object told apart."""

from __future__ import annotations

import pytest

from emvwire import contract
from emvwire.contract import (
    AuthorisationRequest,
    CompletionRequest,
    ContractError,
    Decision,
    DeclineReason,
    MalformedError,
    decode,
    encode,
)


@pytest.mark.parametrize(
    ("data", "names"),
    [
        (b'{"icc_data": "9F26", "track2": 12}', "$.track2"),
        (b'{"icc_data": "9F2", "track2": "12"}', "$.icc_data"),  # odd length
        (b'{"icc_data": "9F26\\n", "track2": "12"}', "$.icc_data"),  # a final newline
        (b'{"icc_data": "' + b"00" * 256 + b'", "track2": "12"}', "$.icc_data"),
        (b'{"icc_data": "9F26", "track2": "12", "pan": "1"}', "pan"),
        (b'{"icc_data": "9F26"}', "track2"),
    ],
)
def test_a_bad_request_names_its_field(data: bytes, names: str) -> None:
    with pytest.raises(ContractError, match=names.replace("$", r"\$")) as err:
        decode(data, AuthorisationRequest)
    assert not isinstance(err.value, MalformedError)


@pytest.mark.parametrize("data", [b"{broken", b"[1, 2]", b'"text"', b"null", b""])
def test_a_body_that_is_no_json_object_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedError):
        decode(data, AuthorisationRequest)


def test_amounts_are_positive_integers() -> None:
    assert decode(b"{}", CompletionRequest).amount is None
    assert decode(b'{"amount": 5}', CompletionRequest).amount == 5
    for bad in (b'{"amount": 0}', b'{"amount": true}', b'{"amount": 1.5}'):
        with pytest.raises(ContractError, match="amount"):
            decode(bad, CompletionRequest)


def test_requests_leave_absent_fields_out_and_answers_keep_them() -> None:
    assert encode(CompletionRequest()) == b"{}"
    decision = Decision(
        id="txn_aaaaaaaaaaaaaaaa", approved=False, response_code="51",
        reason=DeclineReason.INSUFFICIENT_FUNDS, amount=100, currency="EUR",
        status="closed",
    )  # fmt: skip
    text = encode(decision)
    assert b'"reason":"INSUFFICIENT_FUNDS"' in text
    assert b'"par":null' in text
    assert decode(text, Decision) == decision


def test_answers_skip_fields_they_do_not_know() -> None:
    text = encode(Decision(id="t", approved=True, response_code="00", amount=1,
                           currency="EUR", status="pending"))  # fmt: skip
    later = text[:-1] + b',"new_field":1}'
    assert decode(later, Decision).approved is True


def test_every_message_has_a_schema() -> None:
    schemas = contract.schemas()
    for message in contract.MESSAGES:
        assert message.__name__ in schemas
    assert schemas["AuthorisationRequest"]["additionalProperties"] is False
    assert schemas["AuthorisationRequest"]["required"] == ["icc_data", "track2"]


def test_a_decision_carries_its_arpc_in_hex() -> None:
    answer = b'{"id":"t","approved":true,"response_code":"00","amount":1,"currency":"EUR",'
    assert decode(answer + b'"status":"pending","arpc":""}', Decision).arpc == ""
    with pytest.raises(ContractError, match=r"\$\.arpc"):
        decode(answer + b'"status":"pending","arpc":"not hex"}', Decision)
