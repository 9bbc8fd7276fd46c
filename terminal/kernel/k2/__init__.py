"""Kernel 2: Mastercard M/Chip contactless (EMV Book C-2).

``flow`` sequences the kernel (GPO, records, relay resistance, GENERATE AC, outcome);
``rules`` holds its decisions as pure functions, each tested on its own.
"""
