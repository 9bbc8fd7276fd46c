# Shared set-up of scripts/demo, scripts/test and scripts/lint (sourced, not run).
# Makes .venv with Python >= 3.11 and installs tapstack with the pinned versions of
# constraints.txt. Re-installs only when pyproject.toml, constraints.txt or this file
# changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${TAPSTACK_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "tapstack needs Python >= 3.11 (found: $("$PY" --version 2>&1)); set PYTHON=..." >&2
    exit 2
fi
# Progress (each step over a second says so): a line per step, and on a terminal pip's
# own progress as well (in a pipe or a log pip stays quiet).
if [ -t 2 ]; then PIP_QUIET=(); else PIP_QUIET=(-q); fi
step() { echo "   $* ($SECONDS s)" >&2; }
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
stamp="$VENV/.tapstack-installed"
want="$(cat pyproject.toml constraints.txt scripts/_setup.sh | sha256sum | cut -c1-16)"
# The editable install in setuptools' compat mode: a plain .pth line puts the checkout
# on sys.path, where the default (lenient) mode installs an import hook whose loading
# costs every command about 20 ms of its start (BENCHMARKS.md, "Start-up"). The
# checkout's other folders (tests, bench, fuzz) become importable too: no package
# name is shared with them. setuptools calls compat mode transitional: when it refuses
# it, the default mode is installed instead.
install_editable() {
    "$VENV/bin/python" -m pip install "${PIP_QUIET[@]}" -c constraints.txt \
        --config-settings editable_mode=compat -e ".[$1]" >&2 \
    || "$VENV/bin/python" -m pip install "${PIP_QUIET[@]}" -c constraints.txt -e ".[$1]" >&2
}
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== installing tapstack and its pinned dependencies into $VENV (about 40 s the" \
         "first time)" >&2
    step "1/3 pip itself"
    "$VENV/bin/python" -m pip install "${PIP_QUIET[@]}" --upgrade pip >&2
    step "2/3 tapstack and its dependencies (test, lint, hsm, fuzz)"
    install_editable test,lint,hsm,fuzz
    # pyscard builds from source: it needs gcc, swig and libpcsclite-dev. Without them
    # the PC/SC tests skip (and fail in CI, which installs them).
    step "3/3 pyscard, built from source"
    if ! install_editable pcsc; then
        echo "!! pyscard did not build (apt-get install swig libpcsclite-dev gcc);" \
             "PC/SC tests will be skipped" >&2
    fi
    echo "$want" > "$stamp"
    echo "== ready ($SECONDS s)" >&2
fi
export PATH="$VENV/bin:$PATH"
