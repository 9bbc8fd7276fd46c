"""``terminal gate parking`` options that reach :func:`run_parking`: the lane and a
fixed clock (``--now``), and their usage errors (exit code 2, no traceback); each gate
takes only its own options."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

import terminal.commands.parking
from terminal.cli import cli

ISSUER = ["--issuer", "http://127.0.0.1:9", "--terminal-id", "t", "--terminal-key", "k",
          "--dev-plain-http"]  # fmt: skip


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(terminal.commands.parking, "run_parking", lambda **kw: seen.append(kw))
    return seen


def test_lane_and_now_reach_the_parking_gate(calls: list[dict[str, Any]]) -> None:
    done = CliRunner().invoke(
        cli, ["gate", "parking", *ISSUER, "--lane", "exit", "--now", "2026-11-24T10:15"]
    )
    assert done.exit_code == 0, done.output
    (call,) = calls
    assert call["lane"] == "exit"
    assert call["clock"]() == datetime(2026, 11, 24, 10, 15, tzinfo=UTC)


def test_lane_comes_from_the_environment_and_the_clock_is_the_system_one(
    calls: list[dict[str, Any]],
) -> None:
    done = CliRunner().invoke(
        cli, ["gate", "parking", *ISSUER], env={"TAPSTACK_PARKING_LANE": "entry"}
    )
    assert done.exit_code == 0, done.output
    assert calls[0]["lane"] == "entry"
    assert calls[0]["clock"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--now", "yesterday"], "not an ISO 8601 time"),
        (["--lane", "sideways"], "'sideways' is not one of"),
    ],
)
def test_bad_parking_options_are_usage_errors(
    calls: list[dict[str, Any]], args: list[str], message: str
) -> None:
    done = CliRunner().invoke(cli, ["gate", "parking", *ISSUER, *args])
    assert done.exit_code == 2
    assert message in done.output
    assert "Traceback" not in done.output
    assert not calls


def test_the_gates_are_subcommands_with_their_own_options(calls: list[dict[str, Any]]) -> None:
    listed = CliRunner().invoke(cli, ["gate", "--help"])
    assert listed.exit_code == 0
    assert "transit" in listed.output
    assert "parking" in listed.output
    transit = CliRunner().invoke(cli, ["gate", "transit", "--help"])
    assert "--seal-key" in transit.output
    assert "--lane" not in transit.output
    assert "--issuer" not in transit.output
    parking = CliRunner().invoke(cli, ["gate", "parking", "--help"])
    assert "--lane" in parking.output
    assert "--seal-key" not in parking.output
    for args in (["transit", "--lane", "exit"], ["parking", *ISSUER, "--seal-key", "00"]):
        done = CliRunner().invoke(cli, ["gate", *args])
        assert done.exit_code == 2
        assert "No such option" in done.output
    assert not calls


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--nats", "tls://127.0.0.1:4222"], "--nats needs --operator"),
        (["--nats", "nats://127.0.0.1:4222", "--operator", "metro"], "tls://"),
        (["--nats", "tls://127.0.0.1:4222", "--operator", "Metro Line"], "operator name"),
        (["--nats", "tls://127.0.0.1:4222", "--operator", "metro", "--backoffice",
          "https://127.0.0.1:8700", "--gate-key", "k"], "not both"),
    ],
)  # fmt: skip
def test_a_transit_gate_on_nats_checks_its_options(args: list[str], why: str) -> None:
    """The gate on NATS JetStream instead of HTTP: an operator is needed, the link is
    TLS unless --dev-plain-http, and it is one uplink or the other."""
    done = CliRunner().invoke(
        cli, ["gate", "transit", "--gate-id", "G1", "--seal-key", "ab" * 32, *args]
    )
    assert done.exit_code == 2, done.output
    assert why in done.output
