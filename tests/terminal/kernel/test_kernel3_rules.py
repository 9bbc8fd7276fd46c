"""The pure decisions of kernel 3 (terminal/kernel/k3/rules.py): CVM selection (Book C-3
§5.7), with the consumer device CVM defence."""

from __future__ import annotations

import pytest

from terminal.kernel.k3.rules import CVM_RESULTS, visa_cvm
from terminal.kernel.transaction import Cvm

TTQ_ALL = bytes.fromhex("26404000")  # online PIN + signature supported, CVM required
TTQ_NO_CVM = bytes.fromhex("26004000")
TTQ_PIN_ONLY = bytes.fromhex("24404000")
TTQ_NONE = bytes.fromhex("20404000")  # neither online PIN nor signature


@pytest.mark.parametrize(
    ("ttq", "ctq", "online", "verified", "policy", "cvm", "decline"),
    [
        (TTQ_NO_CVM, None, True, False, "decline", Cvm.NO_CVM, False),
        (TTQ_ALL, None, True, False, "decline", Cvm.SIGNATURE, False),
        (TTQ_PIN_ONLY, None, True, False, "decline", Cvm.ONLINE_PIN, False),
        (TTQ_PIN_ONLY, None, False, False, "decline", Cvm.NO_CVM, True),
        (TTQ_ALL, "8000", True, False, "decline", Cvm.ONLINE_PIN, False),
        (TTQ_NONE, "8000", True, False, "decline", Cvm.NO_CVM, True),
        (TTQ_ALL, "0080", True, True, "decline", Cvm.CDCVM, False),
        (TTQ_ALL, "0080", True, False, "decline", Cvm.NO_CVM, True),
        (TTQ_ALL, "0080", True, False, "require_cvm", Cvm.ONLINE_PIN, False),
        (TTQ_ALL, "0080", False, False, "require_cvm", Cvm.SIGNATURE, False),
        (TTQ_NONE, "0080", True, False, "require_cvm", Cvm.NO_CVM, True),
        (TTQ_NO_CVM, "0080", True, False, "decline", Cvm.NO_CVM, False),
        (TTQ_ALL, "4000", True, False, "decline", Cvm.SIGNATURE, False),
        (TTQ_ALL, "0000", True, False, "decline", Cvm.NO_CVM, True),
        (TTQ_NO_CVM, "0000", True, False, "decline", Cvm.NO_CVM, False),
    ],
)
def test_visa_cvm(
    ttq: bytes,
    ctq: str | None,
    online: bool,
    verified: bool,
    policy: str,
    cvm: Cvm,
    decline: bool,
) -> None:
    decision = visa_cvm(
        ttq=ttq,
        ctq=None if ctq is None else bytes.fromhex(ctq),
        online_cryptogram=online,
        cdcvm_verified=verified,
        policy=policy,
    )
    assert decision.cvm is cvm
    assert decision.decline is decline
    assert decision.online is (cvm is Cvm.ONLINE_PIN)
    if decline:
        assert decision.reason


def test_cvm_results_codes() -> None:
    assert CVM_RESULTS[Cvm.NO_CVM] == bytes.fromhex("1F0002")
    assert CVM_RESULTS[Cvm.ONLINE_PIN][0] == 0x02
    assert CVM_RESULTS[Cvm.SIGNATURE][0] == 0x1E
