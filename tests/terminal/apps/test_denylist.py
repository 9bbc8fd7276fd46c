"""The gate's deny list (terminal.apps.denylist): checks, deltas of the back office's
GET /v1/deny-list, merges, and the copy on disk a restarted gate reads without network."""

from __future__ import annotations

import json
import random
import secrets
from pathlib import Path

import pytest

from terminal.apps import denylist
from terminal.apps.denylist import DenyList, DenyListError


def _refs(n: int) -> list[str]:
    return [secrets.token_hex(16) for _ in range(n)]


def test_full_list_then_checks() -> None:
    refs = _refs(1000)
    deny = DenyList()
    assert deny.apply({"version": 3, "full": True, "add": refs, "remove": []})
    assert deny.version == 3
    assert len(deny) == 1000
    assert all(ref in deny for ref in refs)
    assert all(ref.upper() in deny for ref in refs[:10])  # hex in either case
    assert not any(ref in deny for ref in _refs(1000))
    assert bytes.fromhex(refs[0]) in deny


def test_a_key_straddling_two_neighbours_is_not_a_match() -> None:
    # Every key in bucket 0: the tail of one and the head of the next form a third.
    first, second = bytes(8) + b"\x01" * 8, b"\x02" * 8 + bytes(8)
    deny = DenyList()
    deny.apply({"version": 1, "full": True, "add": [first.hex(), second.hex()]})
    straddling = b"\x01" * 8 + b"\x02" * 8
    assert first + second == bytes(8) + straddling + bytes(8)
    assert first in deny
    assert second in deny
    assert straddling not in deny


def test_deltas_add_and_remove_and_stale_versions_change_nothing() -> None:
    a, b, c = _refs(3)
    deny = DenyList()
    deny.apply({"version": 1, "full": True, "add": [a, b]})
    assert deny.apply({"version": 2, "full": False, "add": [c], "remove": [a]})
    assert (a in deny, b in deny, c in deny) == (False, True, True)
    assert len(deny) == 2
    # An answer older than what we have is ignored (a retried poll arriving late).
    assert not deny.apply({"version": 2, "full": False, "add": [a], "remove": []})
    assert a not in deny
    # Removed then added again, and the other way round.
    deny.apply({"version": 3, "full": False, "add": [a], "remove": [c]})
    assert (a in deny, c in deny) == (True, False)
    assert deny.version == 3


@pytest.mark.parametrize(
    "delta",
    [
        {"version": 5, "add": ["zz" * 16]},
        {"version": 5, "add": ["ab" * 15]},
        {"version": 5, "add": ["ab " * 10 + "ab"]},
        {"version": -1, "add": []},
        {"version": True, "add": []},
        {"version": "7", "add": []},
        {"version": 5, "add": "ab" * 16},
        {"version": 5, "add": [], "remove": [17]},
    ],
)
def test_a_malformed_delta_is_refused_and_changes_nothing(
    tmp_path: Path, delta: dict[str, object]
) -> None:
    (ref,) = _refs(1)
    deny = DenyList(tmp_path)
    deny.apply({"version": 1, "full": True, "add": [ref]})
    with pytest.raises(DenyListError):
        deny.apply(delta)
    assert ref in deny
    assert deny.version == 1
    assert ref in DenyList(tmp_path)


def test_a_restarted_gate_denies_from_disk(tmp_path: Path) -> None:
    refs = _refs(50)
    deny = DenyList(tmp_path)
    deny.apply({"version": 10, "full": True, "add": refs})
    deny.apply({"version": 11, "add": ["ab" * 16], "remove": [refs[0]]})
    again = DenyList(tmp_path)
    assert again.version == 11
    assert "ab" * 16 in again
    assert refs[0] not in again
    assert all(ref in again for ref in refs[1:])
    assert len(again) == 50


def test_a_torn_last_log_line_is_cut_off(tmp_path: Path) -> None:
    (ref,) = _refs(1)
    deny = DenyList(tmp_path)
    deny.apply({"version": 1, "full": True, "add": []})
    deny.apply({"version": 2, "add": [ref]})
    log = tmp_path / denylist.LOG_FILE
    log.write_bytes(log.read_bytes() + b'{"version":3,"add":["')
    again = DenyList(tmp_path)
    assert again.version == 2
    assert ref in again
    assert log.read_bytes().endswith(b"\n")


def test_a_foreign_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / denylist.BASE_FILE).write_bytes(b"not a deny list at all, really not")
    with pytest.raises(DenyListError, match="not a deny list"):
        DenyList(tmp_path)
    (tmp_path / denylist.BASE_FILE).unlink()
    (tmp_path / denylist.LOG_FILE).write_text('{"version": 1, "add": ["nope"]}\n')
    with pytest.raises(DenyListError, match="line 1"):
        DenyList(tmp_path)


def test_merges_into_the_base_agree_with_a_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many small deltas, merged bucket by bucket whenever the overlay outgrows the
    threshold (lowered here): the list always equals a plain set, also after reopening."""
    monkeypatch.setattr(denylist, "MERGE_AT", 40)
    rng = random.Random(6)
    model: set[str] = set(_refs(300))
    deny = DenyList(tmp_path)
    deny.apply({"version": 1, "full": True, "add": sorted(model)})
    for version in range(2, 60):
        add = [secrets.token_hex(16) for _ in range(rng.randrange(0, 15))]
        remove = rng.sample(sorted(model), rng.randrange(0, 8))
        deny.apply({"version": version, "add": add, "remove": remove})
        model.difference_update(remove)
        model.update(add)
    probes = [*model, *_refs(200)]
    assert len(deny) == len(model)
    assert all((ref in deny) == (ref in model) for ref in probes)
    base = DenyList(tmp_path)
    assert all((ref in base) == (ref in model) for ref in probes)
    # The merges happened: the log is short, the base holds most of the list.
    assert len((tmp_path / denylist.LOG_FILE).read_text().splitlines()) < 20


def test_growth_past_the_index_size_rebuilds_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(denylist, "MERGE_AT", 10)
    deny = DenyList()
    deny.apply({"version": 1, "full": True, "add": _refs(20)})
    grown = _refs(2000)
    deny.apply({"version": 2, "add": grown})
    assert all(ref in deny for ref in grown)
    assert len(deny) == 2020
    assert deny.memory_bytes() >= 2020 * 16


def test_the_delta_log_holds_references_not_cards(tmp_path: Path) -> None:
    (ref,) = _refs(1)
    DenyList(tmp_path).apply({"version": 1, "add": [ref]})
    (line,) = (tmp_path / denylist.LOG_FILE).read_text().splitlines()
    assert json.loads(line) == {"version": 1, "full": False, "add": [ref], "remove": []}


def test_a_full_list_with_repeats_counts_each_card_once(tmp_path: Path) -> None:
    a, b = _refs(2)
    deny = DenyList(tmp_path)
    deny.apply({"version": 2, "full": True, "add": [a, b, a, a.upper()]})
    assert len(deny) == 2
    assert len(DenyList(tmp_path)) == 2


def test_replace_takes_raw_references_only(tmp_path: Path) -> None:
    deny = DenyList(tmp_path)
    deny.replace([bytes(16), b"\xff" * 16], 5)
    assert (bytes(16) in deny, b"\xff" * 16 in deny, deny.version) == (True, True, 5)
    with pytest.raises(DenyListError, match="16 bytes"):
        deny.replace([b"short"], 6)
    assert deny.version == 5
    assert b"\xff" * 16 in DenyList(tmp_path)


def test_checks_of_malformed_references_are_errors() -> None:
    deny = DenyList()
    for bad in ("ab" * 15 + " x", "ab " * 10 + "ab", b"short", 17):
        with pytest.raises(DenyListError):
            _ = bad in deny
