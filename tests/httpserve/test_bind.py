"""``--bind HOST:PORT`` as the three serving commands read it
(:func:`httpserve.server.parse_bind`): an IPv6 host in brackets, a port of ASCII
digits up to 65535; anything else a one-line usage error of each command, never a
traceback (a digit such as ``²`` passes ``str.isdigit`` and fails ``int``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from backoffice.cli import backoffice
from backoffice.store import Home
from httpserve.server import parse_bind
from issuer.cli import cli as issuer

BAD = ["127.0.0.1:\u00b2", "127.0.0.1:", ":8583", "127.0.0.1", "127.0.0.1:65536", "h:-1", "h:8 5"]


def test_good_addresses() -> None:
    assert parse_bind("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_bind("[::1]:8583") == ("::1", 8583)
    assert parse_bind("localhost:65535") == ("localhost", 65535)


@pytest.mark.parametrize("text", BAD)
def test_bad_addresses_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_bind(text)


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--bind", "127.0.0.1:\u00b2"],
        ["serve-iso8583", "--bind", "127.0.0.1:\u00b2"],
    ],
)
def test_the_issuers_services_refuse_a_bad_bind_in_one_line(
    args: list[str], tmp_path: Path
) -> None:
    result = CliRunner().invoke(issuer, ["--home", str(tmp_path / "none"), *args])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: --bind is HOST:PORT")


def test_the_back_office_refuses_a_bad_bind_in_one_line(tmp_path: Path) -> None:
    home = Home(tmp_path / "bo")
    home.init()
    result = CliRunner().invoke(
        backoffice,
        ["--home", str(home.path), "serve", "--bind", "127.0.0.1:\u00b2", "--dev-plain-http"],
    )
    assert result.exit_code == 2  # usage
    assert "Traceback" not in result.output
    assert "'127.0.0.1:\u00b2' is not HOST:PORT, e.g. 127.0.0.1:8700" in result.output
