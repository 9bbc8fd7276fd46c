"""Kernel 2: Mastercard M/Chip contactless (EMV Book C-2).

``flow`` sequences the kernel (GPO, relay resistance, records, GENERATE AC, CDA,
outcome) in its ``_Flow`` and exposes ``KERNEL``; ``rules`` holds its decisions as pure
functions, each tested on its own.
"""
