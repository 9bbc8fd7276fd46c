"""``python -m card``: the same as the ``card`` command."""

from card.cli import main

main()
