"""What every ``issuer`` command shares: the state object, output in text or JSON,
errors as :class:`click.ClickException` subclasses with exit codes, secrets asked for
only when needed, progress on stderr when it is a terminal.

Conventions (clig.dev): data to stdout, messages to stderr; ``--json`` on every
command (a failure then also as ``{"error": {"code", "message", "exit"}}`` on stdout,
:mod:`clikit.errors`); no prompts without a terminal or with ``--no-input``; PANs
masked everywhere (emvwire.mask); exit codes per error class (:mod:`issuer.errors`,
from the table of :mod:`clikit.exits`): 1 internal, 2 bad argument, 3 not found, 4
conflict or forbidden change, 6 key store refused, 10 configuration, 11 database.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from clikit.errors import ToolFailure
from clikit.exits import Exit
from emvwire.mask import scrub
from issuer.config import ENV_KEYSTORE_KEY, ENV_PKCS11_PIN, default_home, load_config
from issuer.errors import IssuerError

if TYPE_CHECKING:  # opened by the commands that use the issuer (not by --help)
    import ssl

    from emvwire.tls import TlsFolder
    from issuer.bootstrap import IssuerApp
    from issuer.config import IssuerConfig

__all__ = [
    "BadArgumentError",
    "CliError",
    "CliState",
    "ConfigCliError",
    "ConflictCliError",
    "DatabaseCliError",
    "KeyStoreCliError",
    "NotFoundCliError",
    "ServiceSetup",
    "emit",
    "json_option",
    "pass_state",
    "progress_printer",
    "table",
]

F = TypeVar("F", bound=Callable[..., Any])


class CliError(ToolFailure):
    """An error shown to the user (:class:`clikit.errors.ToolFailure`: ``Error: ...`` on
    stderr, with ``--json`` also the JSON error object on stdout). Subclasses carry the
    exit code of their :mod:`issuer.errors` class (:class:`clikit.exits.Exit`)."""

    def __init__(self, message: str) -> None:
        super().__init__(scrub(message))

    @staticmethod
    def from_issuer(exc: IssuerError) -> CliError:
        """The CLI error for a domain error: the class of its exit code."""
        return _BY_CODE.get(exc.exit_code, CliError)(str(exc))


class BadArgumentError(CliError):
    """A malformed argument (exit 2, as click's usage errors)."""

    exit_code = Exit.USAGE


class NotFoundCliError(CliError):
    """No such account, card, token, terminal, key or transaction (exit 3)."""

    exit_code = Exit.NOT_FOUND


class ConflictCliError(CliError):
    """It exists already, or a life-cycle rule forbids the change (exit 4)."""

    exit_code = Exit.CONFLICT


class KeyStoreCliError(CliError):
    """The key store refused (exit 6, refused)."""

    exit_code = Exit.REFUSED


class ConfigCliError(CliError):
    """The home is missing or unusable, or a secret is missing (exit 10)."""

    exit_code = Exit.CONFIG


class DatabaseCliError(CliError):
    """The database refused, or the ledger is inconsistent (exit 11)."""

    exit_code = Exit.STORAGE


_BY_CODE: dict[int, type[CliError]] = {
    c.exit_code: c
    for c in (
        BadArgumentError,
        NotFoundCliError,
        ConflictCliError,
        KeyStoreCliError,
        ConfigCliError,
        DatabaseCliError,
    )
}


@dataclass(frozen=True)
class ServiceSetup:
    """What a serving command starts from (:meth:`CliState.service`)."""

    host: str
    port: int
    config: IssuerConfig
    #: The key store's passphrase or PIN, for each process to open its own issuer.
    secret: str = field(repr=False)
    #: The home's TLS folder and the server context made from it (``None``: plain).
    tls: TlsFolder | None
    context: ssl.SSLContext | None


@dataclass
class CliState:
    """The options of the ``issuer`` group and the issuer opened for a command."""

    home: Path | None = None
    db: str | None = None
    no_input: bool = False
    as_json: bool = False
    _app: IssuerApp | None = field(default=None, repr=False)

    @property
    def home_dir(self) -> Path:
        """The issuer home (``--home``, ``$TAPSTACK_ISSUER_HOME`` or the default)."""
        return self.home or default_home()

    def can_prompt(self) -> bool:
        """Whether a prompt may be shown (a terminal, and not ``--no-input``)."""
        return not self.no_input and sys.stdin.isatty()

    def secret_prompt(self, env: str, text: str, *, confirm: bool = False) -> Callable[[], str]:
        """A callable reading ``env`` or, at a terminal, prompting without echo."""

        def ask() -> str:
            import os

            value = os.environ.get(env)
            if value:
                return value
            if not self.can_prompt():
                raise ConfigCliError(f"{text} needed: set {env} (no terminal to ask)")
            answer: str = click.prompt(text, hide_input=True, confirmation_prompt=confirm, err=True)
            return answer

        return ask

    def app(self) -> IssuerApp:
        """The issuer of the home, opened once per command (the composition root is
        imported here, so that ``--help`` and the commands without an issuer skip it),
        its service acting as ``cli:<OS user>`` (:mod:`issuer.domain.audit`)."""
        if self._app is None:
            from issuer.bootstrap import open_issuer
            from issuer.domain.audit import cli_actor

            config = load_config(self.home_dir)
            self._app = open_issuer(
                config.home,
                db_url=self.db,
                passphrase=self.secret_prompt(ENV_KEYSTORE_KEY, "Key store passphrase"),
                pin=self.secret_prompt(ENV_PKCS11_PIN, "PKCS#11 user PIN"),
            )
            # Every change a command makes is audited as the OS user's.
            self._app.service = self._app.service.acting_as(cli_actor())
        return self._app

    def service(
        self, bind: str, example: str, *, plain: bool, what: str, clients: bool = True
    ) -> ServiceSetup:
        """What ``issuer serve``, ``serve-iso8583`` and ``console`` start from: the
        address of ``--bind`` (``example`` shows its form), the home's configuration,
        the key store's passphrase or PIN (asked once: each process opens its own issuer
        with it) and the TLS folder (``None`` when ``plain``), its server context
        checked to load (asking for client certificates unless not ``clients``);
        ``what`` names the plain protocol in the error that suggests it."""
        from emvwire.pki import PkiError
        from httpserve.server import parse_bind
        from issuer.bootstrap import open_issuer
        from issuer.pki import tls_folder

        try:
            host, port = parse_bind(bind)
        except ValueError:
            raise BadArgumentError(f"--bind is HOST:PORT, e.g. {example}") from None
        config = load_config(self.home_dir)
        file = config.keystore.get("type") == "file"
        secret = self.secret_prompt(
            ENV_KEYSTORE_KEY if file else ENV_PKCS11_PIN,
            "Key store passphrase" if file else "PKCS#11 user PIN",
        )()
        if plain:
            return ServiceSetup(host, port, config, secret, None, None)
        checked = open_issuer(config.home, db_url=self.db, passphrase=secret, pin=secret)
        try:
            folder = tls_folder(config.home, checked.keys)
            context = folder.server_context(clients=clients)
        except (PkiError, OSError) as exc:
            raise ConfigCliError(
                f"{exc}; make the TLS folder with `issuer tls init` (or {what} for local "
                "development: --dev-plain-http)"
            ) from None
        finally:
            checked.close()
        return ServiceSetup(host, port, config, secret, folder, context)

    def close(self) -> None:
        """Close the issuer if it was opened."""
        if self._app is not None:
            self._app.close()
            self._app = None


pass_state = click.make_pass_decorator(CliState, ensure=True)


def json_option(func: F) -> F:
    """Add ``--json`` to a command; the flag is also kept on the state for errors."""

    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @functools.wraps(func)
    def wrapper(*args: Any, as_json: bool, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        state = ctx.find_object(CliState)
        if state is not None:
            state.as_json = as_json
        return func(*args, as_json=as_json, **kwargs)

    return wrapper  # type: ignore[return-value]


def emit(data: Any, as_json: bool, text: str | Iterable[str] | None = None) -> None:
    """Print ``data`` as JSON, or ``text`` (lines) for people. Every line passes
    :func:`emvwire.mask.scrub` as a last line of defence against a PAN."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=False))
        return
    if text is None:
        return
    lines = [text] if isinstance(text, str) else list(text)
    for line in lines:
        click.echo(scrub(line))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Rows as aligned text columns (``-`` for empty cells)."""
    cells = [[("-" if v is None or v == "" else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*headers).rstrip()]
    out += [fmt.format(*row).rstrip() for row in cells]
    return out


def progress_printer() -> Callable[[str], None]:
    """Report long work on stderr, only when stderr is a terminal."""

    def show(message: str) -> None:
        if sys.stderr.isatty():
            click.echo(f"... {message}", err=True)

    return show


def certificate_options(
    holder: str, folder: str, days: int
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--csr``, ``--cert-dir`` and ``--days``: how the client certificate of a
    ``holder`` (a terminal, a phone wallet) is made: from its own request, or with a new
    key written beside it in ``HOME/folder`` (``days``: the default validity, passed in
    so that this module imports no PKI at start-up)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--csr", type=click.File("rb"), metavar="FILE",
                         help="Sign this certificate request (PEM, ECDSA P-256; `terminal "
                         f"csr` makes one): the {holder}'s key never leaves it."),
            click.option("--cert-dir", type=click.Path(file_okay=False, path_type=Path),
                         metavar="DIR",
                         help="Where to write ID.crt and, without --csr, ID.key (mode 0600, "
                         f"written once) [default: HOME/{folder}]."),
            click.option("--days", type=click.IntRange(1, 3650), default=days,
                         show_default=True, help="Validity of the certificate (days)."),
        ]  # fmt: skip
        for option in reversed(options):
            command = option(command)
        return command

    return decorate
