"""``issuer init --no-default-ranges``, ``issuer range ...``, ``issuer keys
import|rotate|retire|list`` and ``card register`` through click's CliRunner (an
operator's ranges-and-keys day of README.md), init failures that leave nothing, and
the packaged test CA.

Every output is kept and searched: no master key and no full PAN may appear.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from card.emv import EmvCard
from emvwire.oda import CaKeyStore
from emvwire.profile import load_profile
from issuer.cli import cli
from issuer.personalisation.ranges import PACKAGED_TEST_CA
from terminal.kernel.outcome import Outcome
from tests.issuer.cli_kit import Issuer, all_commands, cli_runner
from tests.issuer.helpers import CVN, OUTSIDE_V1, PAN_NEW, PAN_OLD, PREFIX, ROOT, independent_kcv
from tests.support.kernel import kernel_config, tap


@pytest.fixture
def bare(tmp_path: Path) -> Issuer:
    """A home made with ``issuer init --no-default-ranges``."""
    iss = Issuer(tmp_path / "home", cli_runner())
    made = iss.json("init", "--no-default-ranges", "--kdf-cost", "10")
    assert made["ranges"] == []
    assert [k for k in made["keys"] if k["kind"] == "master"] == []
    assert json.loads((iss.home / "ca.json").read_text())["keys"] == []
    return iss


def test_the_new_commands_are_there() -> None:
    commands = list(all_commands(cli))
    for command in (["range", "add"], ["range", "list"], ["range", "show"], ["range", "retire"],
                    ["keys", "rotate"], ["keys", "retire"], ["keys", "import"]):  # fmt: skip
        assert command in commands  # --help and --json: test_cli.test_help_everywhere


def test_an_operators_ranges_and_keys_day(bare: Issuer, tmp_path: Path) -> None:
    iss = bare
    added = iss.json("range", "add", "--scheme", "visa", "--prefix", PREFIX, "--cvn", str(CVN))
    assert (added["prefix"], added["kind"], added["pan_length"], added["status"]) == (
        PREFIX, "card", 16, "active",
    )  # fmt: skip
    assert added["key_versions"] == []  # no keys until asked
    assert added["ca"] == "A000000003/F1"
    ca = json.loads((iss.home / "ca.json").read_text())
    assert [(k["rid"], k["index"]) for k in ca["keys"]] == [("A000000003", "F1")]
    iss.run("range", "add", "--scheme", "visa", "--prefix", PREFIX + "7", "--cvn", "18", code=4)

    key_file = tmp_path / "key.hex"
    for purpose, key in OUTSIDE_V1.items():
        key_file.write_text(key.hex() + "\n")
        args = ("keys", "import", "--scheme", "visa", "--bin", PREFIX, "--cvn", str(CVN),
                "--purpose", purpose, "--key-file", str(key_file))  # fmt: skip
        wrong = bytes(b ^ 0xFF for b in independent_kcv(key)).hex()
        iss.run(*args, "--kcv", wrong, code=6)
        done = iss.json(*args, "--kcv", independent_kcv(key).hex())
        assert (done["version"], done["kcv"]) == (1, independent_kcv(key).hex().upper())
    key_file.unlink()
    shown = iss.json("range", "show", PREFIX)
    assert shown["key_versions"] == [{"version": 1, "retired": False}]

    account = iss.json("account", "create", "--holder", "Grace")["id"]
    register = ("card", "register", "--account", account, "--scheme", "visa",
                "--expiry", "2031-12", "--cvn", str(CVN), "--psn", "01")  # fmt: skip
    old = json.loads(iss.run(*register, "--json", input=PAN_OLD + "\n").stdout)
    assert (old["pan"], old["key_version"], old["origin"]) == (
        "455123******0016", 1, "registered",
    )  # fmt: skip

    rotated = iss.json("keys", "rotate", "--scheme", "visa", "--bin", PREFIX, "--cvn", str(CVN))
    assert rotated["version"] == 2
    assert [k["id"] for k in rotated["keys"]] == [
        f"imk/visa/{PREFIX}/{CVN}/{p}/v2" for p in ("ac", "smi", "smc")
    ]
    new = json.loads(iss.run(*register, "--json", input=PAN_NEW + "\n").stdout)
    assert new["key_version"] == 2
    iss.json("keys", "retire", "--scheme", "visa", "--bin", PREFIX, "--cvn", str(CVN),
             "--version", "1")  # fmt: skip
    listed = iss.json("keys", "list", "--bin", PREFIX)
    assert {(k["purpose"], k["version"], k["retired"]) for k in listed} == {
        (p, v, v == 1) for p in ("ac", "smi", "smc") for v in (1, 2)
    }
    assert all(len(k["kcv"]) == 6 for k in listed)
    table = iss.run("keys", "list").stdout
    assert "retired" in table
    assert independent_kcv(OUTSIDE_V1["ac"]).hex().upper() in table
    text = iss.run("range", "list").stdout
    assert "v1(retired) v2" in text

    iss.json("range", "retire", PREFIX)
    refused = iss.run(*register, input="4551230000000032\n", code=2)
    assert "active visa card ranges" in refused.stderr
    assert iss.json("range", "list")[0]["status"] == "retired"
    for output in iss.outputs:
        for key in OUTSIDE_V1.values():
            assert key.hex() not in output.lower()
        for pan in (PAN_OLD, PAN_NEW, "4551230000000032"):
            assert pan not in output


def test_a_failed_init_leaves_nothing(tmp_path: Path) -> None:
    runner = cli_runner()
    home = tmp_path / "home"
    missing_ca = tmp_path / "no-ca"
    missing_ca.mkdir()
    result = runner.invoke(
        cli, ["--home", str(home), "init", "--kdf-cost", "10", "--ca-dir", str(missing_ca)]
    )
    assert result.exit_code == 10, result.output
    assert "use --ca new" in result.stderr
    assert not home.exists()
    # A failure after the key store was written: the database cannot be made (its
    # folder would be a file); what was in the home before stays.
    home.mkdir()
    (home / "notes.txt").write_text("mine\n")
    result = runner.invoke(
        cli,
        ["--home", str(home), "init", "--kdf-cost", "10", "--db",
         f"sqlite:{home / 'notes.txt' / 'issuer.db'}"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    ok = runner.invoke(cli, ["--home", str(home), "init", "--kdf-cost", "10", "--json"])
    assert ok.exit_code == 0, ok.output
    assert {"keystore.json", "issuer.db", "config.json", "ca.json", "tls", "notes.txt"} <= {
        p.name for p in home.iterdir()
    }


def test_the_test_ca_is_package_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test CA keys init uses by default are the package's copy (what a wheel
    holds: the package-data glob of pyproject.toml), equal to fixtures/ca."""
    monkeypatch.delenv("TAPSTACK_TEST_CA_DIR", raising=False)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = project["tool"]["setuptools"]["package-data"]["issuer.personalisation"]
    packaged = sorted(p.name for g in globs for p in PACKAGED_TEST_CA.parent.glob(g))
    assert packaged == [
        "test-ca-A000000003-F1-private.pem",
        "test-ca-A000000004-99-private.pem",
        "test-ca-A000000025-E4-private.pem",
        "test-ca-A000000333-E7-private.pem",
        "test-ca-A000000333-E8-sm2-private.hex",
    ]
    for name in packaged:
        assert (PACKAGED_TEST_CA / name).read_bytes() == (ROOT / "fixtures/ca" / name).read_bytes()
    assert "packaged" in CliRunner().invoke(cli, ["init", "--help"]).stdout


def test_a_unionpay_range_of_the_sm_suite_is_chosen_at_provisioning(
    bare: Issuer, tmp_path: Path
) -> None:
    """The SM suite is selectable per card range: a UnionPay range of CVN 4 gets SM4
    master keys and an SM2 issuer key certified by the SM2 test CA (A000000333/E8,
    written to HOME/ca.json), and ``card provision --range`` issues its cards from it
    with ICC SM2 keys: the card taps offline-approved through the emulated reader with
    SM2 fDDA under the CA keys the issuer wrote."""
    iss = bare
    added = iss.json("range", "add", "--scheme", "unionpay", "--prefix", "625802", "--cvn", "4")
    assert (added["ca"], added["issuer_key"]) == ("A000000333/E8", "sm2/issuer/unionpay")
    ca_file = iss.home / "ca.json"
    assert [(k["index"], k["pk_algorithm"]) for k in json.loads(ca_file.read_text())["keys"]] == [
        ("E8", "04")
    ]
    made = iss.json("keys", "generate", "--scheme", "unionpay", "--bin", "625802", "--cvn", "4")
    assert {k["algorithm"] for k in made} == {"SM4-128"}
    account = iss.json("account", "create", "--holder", "Li Lei")["id"]
    out = tmp_path / "sm4.json"
    iss.json("card", "provision", "--account", account, "--scheme", "unionpay", "--form",
             "card", "--range", "625802", "--out", str(out))  # fmt: skip
    app = json.loads(out.read_text())["applications"][0]
    assert (app["pan"][:6], app["cvn"], app["kernel_id"]) == ("625802", 4, "07")
    assert app["rsa_private_key"] is None
    assert len(bytes.fromhex(app["sm2_private_key"])) == 32
    cfg = kernel_config(b"\x07", floor_limit=3000)
    cfg = replace(cfg, ca_keys=CaKeyStore.load(ca_file))
    profile = load_profile(out)  # the issuer sets no offline limits: the card's own here
    offline = replace(profile.applications[0], limits={"offline_amount": 5000, "offline_count": 3})
    result = tap(EmvCard(replace(profile, applications=(offline,))), 1000, cfg=cfg)
    assert (result.outcome, result.oda_method) == (Outcome.APPROVED, "fDDA (SM2)"), result
    iss.run("card", "provision", "--account", account, "--scheme", "unionpay", "--form",
            "phone", "--range", "625802", "--out", str(tmp_path / "p.json"), code=2)  # fmt: skip
