"""Personalisation: the issuer's CA and ranges, and card or phone profiles from its keys."""

from issuer.personalisation.provision import (
    DEFAULT_REQUESTOR_IDS,
    ProvisionResult,
    build_profile,
    issuer_certificate,
    provision,
    write_profile,
)
from issuer.personalisation.ranges import (
    CA_FOR_SCHEME,
    DEFAULT_RANGES,
    RangeSpec,
    ca_key_file,
    certify_range,
    ensure_ca,
    ensure_issuer_key,
    ensure_master_keys,
)

__all__ = [
    "CA_FOR_SCHEME",
    "DEFAULT_RANGES",
    "DEFAULT_REQUESTOR_IDS",
    "ProvisionResult",
    "RangeSpec",
    "build_profile",
    "ca_key_file",
    "certify_range",
    "ensure_ca",
    "ensure_issuer_key",
    "ensure_master_keys",
    "issuer_certificate",
    "provision",
    "write_profile",
]
