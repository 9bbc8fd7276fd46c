"""What a test does when a service it needs (pcscd, PostgreSQL, SoftHSM) is missing: on a
user's machine it is skipped with the reason; when the run demands every service
(``TAPSTACK_REQUIRE_SERVICES=1``, set by ``.ci/run``) it fails, so that CI can never pass
by skipping."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["REQUIRE_SERVICES", "missing_service"]

REQUIRE_SERVICES = os.environ.get("TAPSTACK_REQUIRE_SERVICES", "") not in ("", "0")


def missing_service(reason: str) -> NoReturn:
    """Skip the test, or fail it when the run demands every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)
