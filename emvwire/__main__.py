"""``python -m emvwire``: run the self-check (published vectors, ODA round trip)."""

from __future__ import annotations

import json
import sys

import click

from emvwire.selfcheck import run


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def main(as_json: bool) -> None:
    """Check emvwire against the published EMV known-answer vectors."""
    results = run()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "check": r.name,
                        "passed": r.passed,
                        "detail": r.detail,
                        "ms": round(r.seconds * 1e3, 3),
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    else:
        for r in results:
            mark = "ok  " if r.passed else "FAIL"
            click.echo(f"{mark} {r.name:<48} {r.detail}  ({r.seconds * 1e3:.1f} ms)")
        failed = sum(not r.passed for r in results)
        sys.stdout.flush()
        click.echo(f"{len(results) - failed} passed, {failed} failed", err=True)
    sys.exit(1 if any(not r.passed for r in results) else 0)


if __name__ == "__main__":
    main()
