"""The README's walk-through ("Using it", its first ``sh`` block) runs as written: bash
with ``set -euo pipefail``, the project's commands on PATH, in a folder of its own, from
``issuer init`` to a payment approved online by ``issuer serve`` over mutual TLS, with
exit status 0, the issuer stopped, and the card's PAN only masked in what it prints."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
HEADING = "## Using it\n"


def walkthrough(readme: str) -> str:
    """The first ``sh`` code block under the heading "Using it" of ``readme``."""
    section = readme[readme.index(HEADING) :]
    start = section.index("```sh\n") + len("```sh\n")
    return section[start : section.index("\n```", start) + 1]


def test_the_walkthrough_is_the_first_block_of_its_section() -> None:
    block = walkthrough(README.read_text())
    assert block.startswith('cd "$(mktemp -d)"')
    assert "terminal pay --reader emulated:" in block
    assert block.rstrip().endswith("# stop the issuer")
    assert "--help" not in block  # runnable commands, no placeholders


@pytest.mark.slow
def test_the_readme_walkthrough_ends_in_an_approved_online_payment(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPSTACK_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.defpath)}"
    # Its scratch folder (mktemp -d) and anything written to the home stay in tmp_path.
    env.update(HOME=str(tmp_path), TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1")
    script = "set -euo pipefail\n" + walkthrough(README.read_text())
    proc = subprocess.Popen(
        ["bash", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        # a failed step leaves `issuer serve` running in the background: stop the group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-3000:]}\n{err[-3000:]}"
    verdict = [line for line in out.splitlines() if not line.startswith(" ")][-1]
    assert verdict.startswith("APPROVED: 12.34 EUR, VISA"), out[-1500:]
    assert out.rstrip().splitlines()[-1].startswith("  issuer 00 approved, transaction txn_")
    assert "listening on https://127.0.0.1:" in err
    assert "Traceback" not in out + err
    # the card's PAN shown only masked (first 6 and last 4 digits)
    (profile,) = tmp_path.glob("*/ada-visa.json")
    pan = json.loads(profile.read_text())["applications"][0]["pan"]
    assert pan not in out + err
    assert f"{pan[:6]}******{pan[-4:]}" in verdict
