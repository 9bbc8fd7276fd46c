"""tapstack card: EMV contactless cards in software: in-process, over PC/SC (vpcd), over nfcpy."""

__all__: list[str] = []
