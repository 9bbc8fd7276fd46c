"""``python -m issuer``: the same as the ``issuer`` command."""

from issuer.cli import main

main()
