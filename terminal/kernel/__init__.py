"""The EMV contactless kernel: entry point (Book B), kernel 2, kernel 3, ODA, CVM.

=================  ==============================================================
module             what it holds
=================  ==============================================================
``config``         terminal configuration as data (combinations, limits, CA keys)
``transaction``    :class:`Transaction` in, :class:`TransactionResult` out (field 55,
                   card reference, masked views)
``outcome``        outcomes, outcome parameter set, UI requests (Book A)
``registry``       the kernel plug-in interface (``Kernel``, ``KernelContext``) and
                   the registry of kernels by kernel id
``entry_point``    the entry point, one module per Book B phase: pre-processing,
                   protocol activation, combination selection, kernel activation,
                   outcome processing, and the ``EntryPoint`` that sequences them
``recording``      the record of one entry point transaction (SELECTs, activations,
                   outcome, UI requests), as EMVCo conformance tests read it
``conformance``    the EMVCo conformance test kernel: records its activation,
                   returns a scripted outcome
``k2``             kernel 2, Mastercard M/Chip (Book C-2): ``flow`` and ``rules``
``k3``             kernel 3, Visa qVSDC (Book C-3) with the defences of the
                   published attacks: ``flow`` and ``rules`` (with the CVM)
``brand``          AID brand vs PAN brand (card brand mixup)
``reading``        what a card reveals (``terminal read``)
=================  ==============================================================

One transaction::

    result = EntryPoint(default_config()).run(reader, Transaction(1234))
    record = EntryPoint(default_config()).process(reader, Transaction(1234))  # Book B §3.5
"""
