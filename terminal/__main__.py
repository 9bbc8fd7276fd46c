"""``python -m terminal``: the same as the ``terminal`` command."""

from terminal.cli import main

main()
