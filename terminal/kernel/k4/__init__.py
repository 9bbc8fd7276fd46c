"""Kernel 4: American Express Expresspay (EMV Book C-4), EMV mode.

``flow`` runs the kernel on kernel 2's EMV-mode sequence (GPO, READ RECORD, GENERATE AC
with CDA, CVM list, terminal action analysis) with the Enhanced Contactless Reader
Capabilities 9F6E of Book C-4 and no relay resistance, and exposes ``KERNEL``.
"""
