"""The issuer home: a folder with ``config.json``, the key store file and, by default,
the SQLite database.

``config.json`` (``tapstack-issuer/1``)::

    {"format": "tapstack-issuer/1",
     "db": "sqlite:issuer.db",
     "keystore": {"type": "file", "path": "keystore.json"}
               | {"type": "pkcs11", "module": "/usr/lib/softhsm/libsofthsm2.so",
                  "token": "tapstack"},
     "ca": "test" | "new",
     "created_at": "..."}

Relative paths (the SQLite file, the key store file) are relative to the home, so a
home can be moved or copied whole. Nothing secret is in the home but the encrypted
key store: its passphrase comes from ``TAPSTACK_KEYSTORE_KEY`` or a prompt, the
PKCS#11 PIN from ``TAPSTACK_PKCS11_PIN`` or a prompt.

Environment: ``TAPSTACK_ISSUER_HOME`` (default ``~/.tapstack/issuer``), ``TAPSTACK_DB``
(a database URL overriding the home's).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from issuer.errors import ConfigError
from issuer.model.entities import utc_now

__all__ = [
    "CONFIG_FORMAT",
    "ENV_DB",
    "ENV_HOME",
    "ENV_KEYSTORE_KEY",
    "ENV_PKCS11_PIN",
    "IssuerConfig",
    "default_home",
    "load_config",
    "redact_url",
    "save_config",
]

CONFIG_FORMAT: Final = "tapstack-issuer/1"
ENV_HOME: Final = "TAPSTACK_ISSUER_HOME"
ENV_DB: Final = "TAPSTACK_DB"
ENV_KEYSTORE_KEY: Final = "TAPSTACK_KEYSTORE_KEY"
ENV_PKCS11_PIN: Final = "TAPSTACK_PKCS11_PIN"
CONFIG_FILE: Final = "config.json"


def redact_url(url: str) -> str:
    """A database URL without its password (for output and logs)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def default_home() -> Path:
    """``$TAPSTACK_ISSUER_HOME`` or ``~/.tapstack/issuer``."""
    env = os.environ.get(ENV_HOME)
    return Path(env) if env else Path.home() / ".tapstack" / "issuer"


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """The parsed ``config.json`` of a home."""

    home: Path
    db: str = "sqlite:issuer.db"
    keystore: dict[str, str] = field(
        default_factory=lambda: {"type": "file", "path": "keystore.json"}
    )
    ca: str = "test"
    created_at: str = ""

    def db_url(self, override: str | None = None) -> str:
        """The database URL: ``override``, ``$TAPSTACK_DB`` or the home's, with a
        relative SQLite path made absolute against the home."""
        url = override or os.environ.get(ENV_DB) or self.db
        if url.startswith(("postgresql://", "postgres://")):
            return url
        path = url[len("sqlite:") :] if url.startswith("sqlite:") else url
        if path.startswith("//"):
            path = path[2:]
        target = Path(path)
        return "sqlite:" + str(target if target.is_absolute() else self.home / target)

    def keystore_path(self) -> Path:
        """The key store file of a file key store."""
        path = Path(self.keystore.get("path", "keystore.json"))
        return path if path.is_absolute() else self.home / path

    def to_json(self) -> dict[str, Any]:
        """The ``config.json`` content."""
        return {
            "format": CONFIG_FORMAT,
            "db": self.db,
            "keystore": dict(self.keystore),
            "ca": self.ca,
            "created_at": self.created_at or utc_now(),
        }


def load_config(home: Path) -> IssuerConfig:
    """Read ``HOME/config.json``; :class:`ConfigError` if the home is not initialised."""
    path = home / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no issuer at {home}: run `issuer init` (or set --home)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable: {type(exc).__name__}") from None
    if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
        raise ConfigError(f"{path} is not a {CONFIG_FORMAT} file")
    keystore = data.get("keystore")
    if not isinstance(keystore, dict) or keystore.get("type") not in ("file", "pkcs11"):
        raise ConfigError(f"{path}: keystore.type is file or pkcs11")
    return IssuerConfig(
        home=home,
        db=str(data.get("db", "sqlite:issuer.db")),
        keystore={str(k): str(v) for k, v in keystore.items()},
        ca=str(data.get("ca", "test")),
        created_at=str(data.get("created_at", "")),
    )


def save_config(config: IssuerConfig) -> Path:
    """Write ``HOME/config.json`` (mode 0600)."""
    path = config.home / CONFIG_FILE
    tmp = path.with_name(".config.json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(config.to_json(), out, indent=2)
        out.write("\n")
    os.replace(tmp, path)
    return path
