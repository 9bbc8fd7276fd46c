"""Kernel 3: Visa qVSDC contactless (EMV Book C-3).

``flow`` sequences the kernel (GPO, records, fDDA, outcome) in its ``_Flow``, with the
defences of the published attacks, and exposes ``KERNEL``; ``rules`` holds its
decisions as pure functions, each tested on its own (the cryptogram type, the
cardholder verification with the signed CTQ for CDCVM).
"""
