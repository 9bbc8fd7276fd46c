"""tapstack issuer: keys, provisioning, token vault, authorisation service and ledger."""

__all__: list[str] = []
