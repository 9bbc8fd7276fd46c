"""Kernel 7: UnionPay QuickPass, qUICS (EMV Book C-7).

``flow`` runs kernel 3's qVSDC-style flow (the decision in the GPO answer, TTQ and CTQ,
fDDA with the signed CTQ, the CVM rules) under kernel 7's name and id, and exposes
``KERNEL``.
"""
