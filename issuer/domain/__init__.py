"""The issuer's domain: accounts, cards, tokens and terminals managed
(:mod:`issuer.domain.service`), money moved (:mod:`issuer.domain.funds`), the token
vault, and the authorisation service's work: authorisation
(:mod:`issuer.domain.authorise`) and what follows it (:mod:`issuer.domain.clearing`),
spending controls (:mod:`issuer.domain.controls`) and the program's decision endpoint
(:mod:`issuer.domain.program`: what is asked and signed; the service asks).

Pure of I/O but for the repositories and key store it is given
(:mod:`issuer.ledger.repository`, :mod:`issuer.keys.base`); the entities it decides on
are :mod:`issuer.model`'s.
"""
