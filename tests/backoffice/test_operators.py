"""The back office's operators (migration 3, backoffice/operators.py) on both
databases: a credential shown once and kept as an Argon2id hash, verified only for an
active operator, scopes checked; the audit log masks what it keeps; and ``backoffice
operator add|list|revoke`` and ``backoffice audit`` through click's runner."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from backoffice.cli import backoffice
from backoffice.errors import StoreError
from backoffice.operators import Operators
from backoffice.store import Home, Store
from tests.backoffice.databases import home_args


def test_an_operator_signs_in_with_its_credential_until_revoked(store: Store) -> None:
    operators = Operators(store)
    made, credential = operators.add("Ada", ["operations"])
    assert made.id.startswith("bop_")
    assert len(made.id) == 20
    assert credential.startswith("bsk_")
    assert len(credential) > 40
    stored = store.conn.execute("SELECT credential_hash FROM operators").fetchone()[0]
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert credential not in stored
    assert operators.verify(made.id, credential) == made
    assert made.may("read")
    assert made.may("operations")
    assert operators.verify(made.id, credential + "x") is None
    assert operators.verify("bop_unknown", credential) is None
    operators.revoke(made.id)
    assert operators.verify(made.id, credential) is None
    with pytest.raises(StoreError, match="revoked already"):
        operators.revoke(made.id)
    reader, _ = operators.add("Bob", ["read"])
    assert reader.may("read")
    assert not reader.may("operations")
    with pytest.raises(ValueError, match="unknown scope 'keys'"):
        operators.add("Eve", ["keys"])
    with pytest.raises(ValueError, match="needs a scope"):
        operators.add("Eve", [])


def test_the_audit_log_masks_what_it_keeps(store: Store) -> None:
    operators = Operators(store)
    with store.write() as w:
        operators.record(w, "operator:bop_x", "deny_list.remove", "deny_list_entry",
                         "3fa2c1d0", "succeeded", {"note": "card 4761739001010010"})  # fmt: skip
    (record,) = operators.audit()
    assert record.actor == "operator:bop_x"
    assert record.outcome == "succeeded"
    assert "4761739001010010" not in json.dumps(record.to_json())
    assert record.details["note"] == "card 476173******0010"
    with pytest.raises(ValueError, match="outcome"), store.write() as w:
        operators.record(w, "x", "y", "z", "1", "maybe")


def _run(home: Home, *args: str) -> Any:
    return CliRunner().invoke(backoffice, [*home_args(home), *args])


def test_operator_commands(home: Home) -> None:
    added = _run(home, "operator", "add", "Ada", "--scope", "read", "--scope", "operations",
                 "--json")  # fmt: skip
    assert added.exit_code == 0, added.output
    info = json.loads(added.output)
    assert info["scopes"] == ["read", "operations"]
    assert info["credential"].startswith("bsk_")
    listed = _run(home, "operator", "list", "--json")
    assert info["credential"] not in listed.output
    assert [o["id"] for o in json.loads(listed.output)["operators"]] == [info["id"]]
    assert _run(home, "operator", "add", "Eve", "--scope", "keys").exit_code == 2
    text = _run(home, "operator", "add", "Bob", "--scope", "read")
    assert "shown once" in text.output
    revoked = _run(home, "operator", "revoke", info["id"], "--json")
    assert json.loads(revoked.output)["status"] == "revoked"
    again = _run(home, "operator", "revoke", info["id"], "--json")
    assert again.exit_code == 3
    assert json.loads(again.stdout)["error"]["code"] == "not_found"
    assert json.loads(_run(home, "audit", "--json").output) == {"audit": []}
