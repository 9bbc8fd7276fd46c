"""The test suite's own rules.

- A test module never imports another test module (``test_*.py``) or a ``conftest.py``:
  helpers shared by several folders live in tests/support/, a helper of one folder's
  tests beside them (tests/issuer/helpers.py, tests/backoffice/taps.py...).
- tests/ is a namespace package, tests/support/ included: no ``__init__.py`` (mypy would
  then map its modules under two names).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything ``path`` imports, ``from a import b`` as ``a.b``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def test_no_test_module_imports_another_test_module() -> None:
    wrong = [
        f"{path.relative_to(TESTS.parent)}:{line}: {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, name in _imports(path)
        if name.startswith("tests.")
        and (name.rpartition(".")[2].startswith("test_") or name.endswith(".conftest"))
    ]
    assert not wrong, "move what they share to tests/support/:\n" + "\n".join(wrong)


def test_tests_is_a_namespace_package() -> None:
    assert not list(TESTS.rglob("__init__.py"))
