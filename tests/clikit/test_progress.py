"""Progress of long work (clikit.progress): a bar per stage on standard error when it
is a terminal, nothing at all otherwise (clig.dev: no animation in a pipe or a log)."""

from __future__ import annotations

import pytest

from clikit import progress


def test_nothing_is_drawn_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    report = progress.stage_progress()
    for done in range(4):
        report("aggregate", done, 3)
    with progress.progress(range(3), 3, "provisioning") as items:
        assert list(items) == [0, 1, 2]
    assert capsys.readouterr() == ("", "")


def test_a_bar_per_stage_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "_tty", lambda: True)
    report = progress.stage_progress()
    for stage, total in (("riders", 5), ("trips", 1), ("aggregate", 2)):
        for done in range(total + 1):
            report(stage, done, total)
    with progress.progress(range(3), 3, "provisioning 3 cards") as items:
        assert list(items) == [0, 1, 2]
    out, err = capsys.readouterr()
    assert out == ""
    assert [line for line in ("riders", "trips", "aggregate") if line in err] == [
        "riders",
        "aggregate",  # a stage of one item draws nothing
    ]
    assert "provisioning 3 cards" in err
