"""The dependency rules hold: each package's imports and the layers inside terminal,
issuer and the back office (the contracts of ``[tool.importlinter]`` in pyproject.toml,
checked by import-linter), and the check fails on a planted violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "emvwire", "hostlink", "httpserve", "clikit", "webconsole", "card", "terminal", "issuer",
    "backoffice",
)  # fmt: skip
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the packages of ``tree`` (found first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_dependency_rules_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages and pyproject.toml, copied to plant violations in."""
    tree = tmp_path_factory.mktemp("house")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


@pytest.mark.parametrize(
    ("where", "line", "contract"),
    [
        ("emvwire/_planted.py", "import terminal.cli\n", "emvwire is the shared language"),
        ("httpserve/_planted.py", "import issuer.errors\n", "the HTTP server is a server only"),
        ("clikit/_planted.py", "import terminal.cli\n", "the command-line kit is click only"),
        ("webconsole/_planted.py", "import emvwire.mask\n", "the web console kit imports no"),
        ("card/_planted.py", "from issuer import errors\n", "never import each other"),
        ("terminal/kernel/_planted.py", "import terminal.apps.retail\n", "terminal layers"),
        ("terminal/apps/_planted.py", "import click\n", "click only in the command-line"),
        ("issuer/domain/_planted.py", "import issuer.bootstrap\n", "issuer layers"),
        ("backoffice/store.py", "import backoffice.engine\n", "back office layers"),
    ],
)
def test_a_planted_violation_fails_the_check(
    copy: Path, where: str, line: str, contract: str
) -> None:
    target = copy / where
    before = target.read_text() if target.exists() else None
    target.write_text((before or "") + line)
    try:
        result = lint_imports(copy)
    finally:
        if before is None:
            target.unlink()
        else:
            target.write_text(before)
    assert result.returncode != 0
    broken = [ln for ln in result.stdout.splitlines() if " BROKEN" in ln]
    assert any(contract in ln for ln in broken), result.stdout
