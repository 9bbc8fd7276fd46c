"""Kernel 3: Visa qVSDC contactless (EMV Book C-3).

``flow`` sequences the kernel (GPO, records, fDDA, outcome) with the defences of the
published attacks; ``cvm`` is its cardholder verification (signed CTQ for CDCVM).
"""
