"""The self-check the demo runs: every published vector passes, and a wrong one fails."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from emvwire import selfcheck
from emvwire.__main__ import main


def test_every_check_passes() -> None:
    results = selfcheck.run()
    assert len(results) == 11
    assert [r.name for r in results if not r.passed] == []


def test_a_wrong_vector_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = list(selfcheck._CVN_VECTORS)
    cvn, base, extra, _, arpc_in, arpc = bad[0]
    bad[0] = (cvn, base, extra, "0000000000000000", arpc_in, arpc)
    monkeypatch.setattr(selfcheck, "_CVN_VECTORS", tuple(bad))
    results = {r.name: r for r in selfcheck.run()}
    assert not results["Visa CVN 10"].passed
    assert "expected 0000000000000000" in results["Visa CVN 10"].detail
    assert results["Visa CVN 18"].passed


def test_cli_json_and_exit_status() -> None:
    result = CliRunner().invoke(main, ["--json"])
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert all(item["passed"] for item in doc)
    assert {"check", "passed", "detail", "ms"} <= set(doc[0])
