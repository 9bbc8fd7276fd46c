"""tapstack terminal: the reader side: readers, the EMV contactless kernel and the applications."""

__all__: list[str] = []
