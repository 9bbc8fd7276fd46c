"""The issuer's model: entities and value objects, below every other layer but the key
store's names and the errors.

- :mod:`issuer.model.entities`: accounts, cards, tokens, terminals, authorisations,
  journals and their states, as immutable values;
- :mod:`issuer.model.currency`: ISO 4217 currencies and amounts;
- :mod:`issuer.model.pan`: PANs (ISO/IEC 7812-1), payment account references, MCCs;
- :mod:`issuer.model.lifecycle`: the state changes of cards and tokens;
- :mod:`issuer.model.controls`: spending controls, the program's decision endpoint
  and its answers, increments.

The ledger stores these values and the domain decides with them; neither is imported
here.
"""
