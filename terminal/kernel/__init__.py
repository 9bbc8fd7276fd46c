"""The EMV contactless kernel: entry point (Book B), kernel 2, kernel 3, ODA, CVM."""
