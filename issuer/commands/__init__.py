"""The subcommands of ``issuer`` (click groups), one module per area."""
