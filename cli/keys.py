"""API key commands: ``carejourney keys create ROLE [--org CODE]``, ``list``, ``revoke``.

A new key is printed once, alone on stdout (so ``KEY=$(carejourney keys create admin)``
works); only its SHA-256 is stored, in the keys file (``CAREJOURNEY_API_KEYS_FILE``,
default ``<CAREJOURNEY_DATA_DIR>/api-keys.json``). A running server picks the change up
within a second.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from api.security import (
    Role,
    add_key,
    check_entry,
    keys_path,
    read_keys_file,
    write_keys_file,
)
from cli.console import err, fail, out
from cli.options import group
from domain import note, signing
from domain.settings import get_settings

keys_app = group(
    "Create, list and revoke API keys (stored hashed); make and show the checkpoint signing key."
)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


@keys_app.command()
def create(
    role: Annotated[
        Role,
        typer.Argument(
            help="publisher, auditor, coordinator, evaluator or admin.", case_sensitive=False
        ),
    ],
    org: Annotated[
        list[str] | None,
        typer.Option(
            "--org",
            help="ODS code the key acts for (publishers and coordinators; repeat for several).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="A name for the key, shown in the access log (default: role and a number).",
        ),
    ] = None,
    export_agreement: Annotated[
        str | None,
        typer.Option(
            "--export-agreement",
            metavar="REF",
            help="Grant the FHIR bulk export right under this data-sharing agreement "
            "(evaluator and admin keys; written to the access log with every export).",
        ),
    ] = None,
) -> None:
    """Create a key for a principal and print it once; only its hash is kept."""
    organisations = [code.strip().upper() for code in org or []]
    try:
        check_entry(role, organisations, export_agreement)
    except ValueError as exc:
        fail(str(exc))
    path = keys_path(get_settings())
    try:
        existing = read_keys_file(path)
    except (OSError, ValidationError) as exc:
        fail(f"cannot read the keys file {path}: {exc}")
    name = name or f"{role.value}-{len(existing) + 1}"
    try:
        key = add_key(path, role, organisations, name, export_agreement)
    except ValidationError as exc:
        fail(f"invalid key entry: {exc.errors()[0]['msg']}")
    except (OSError, ValueError) as exc:
        fail(str(exc))
    orgs = f" for {', '.join(organisations)}" if organisations else ""
    if export_agreement:
        orgs += f", with the export right under agreement {export_agreement}"
    err.print(
        f"created {role.value} key [bold]{name}[/]{orgs}; stored hashed in {path}. "
        "It is shown only now:",
        highlight=False,
    )
    out.print(key, markup=False, highlight=False, soft_wrap=True)


@keys_app.command("list")
def list_keys() -> None:
    """The stored keys: name, role, organisations, creation time (never the keys)."""
    path = keys_path(get_settings())
    try:
        entries = read_keys_file(path)
    except (OSError, ValidationError) as exc:
        fail(f"cannot read the keys file {path}: {exc}")
    table = Table(title=f"{len(entries)} keys in {path}")
    for column in ("name", "role", "organisations", "export agreement", "created", "sha256"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            e.name,
            e.role.value,
            " ".join(e.organisations),
            e.export_agreement or "",
            e.created_at.isoformat(timespec="seconds") if e.created_at else "",
            e.sha256[:12] + "…",
        )
    out.print(table)


@keys_app.command()
def revoke(name: Annotated[str, typer.Argument(help="The key's name (see `keys list`).")]) -> None:
    """Remove a key; a running server refuses it within a second."""
    path = keys_path(get_settings())
    entries = read_keys_file(path)
    kept = [e for e in entries if e.name != name]
    if len(kept) == len(entries):
        fail(f"no key named {name!r} in {path}", code=1)
    write_keys_file(path, kept)
    err.print(f"revoked key {name}")


@keys_app.command("signing-create")
def signing_create(
    name: Annotated[
        str | None,
        typer.Option(help="Key name (default: the log origin, CAREJOURNEY_LOG_ORIGIN)."),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Overwrite an existing key (rotation: docs/integrity.md)."),
    ] = False,
) -> None:
    """Make the Ed25519 checkpoint signing key (file mode 0600) and print its verifier
    key, the `<name>+<id>+<key>` string auditors pin."""
    settings = get_settings()
    path = signing.key_path(settings)
    try:
        signer = signing.create_key(path, name or settings.log_origin, replace=replace)
    except (FileExistsError, note.NoteError, OSError) as exc:
        fail(f"{exc} (--replace to rotate)" if isinstance(exc, FileExistsError) else str(exc))
    err.print(f"created the checkpoint signing key in {path}; its verifier key:", highlight=False)
    out.print(signer.verifier.vkey(), markup=False, highlight=False, soft_wrap=True)


@keys_app.command("signing-show")
def signing_show() -> None:
    """Print the verifier key of the configured signing key (made on first use on the
    embedded default), for auditors to pin."""
    settings = get_settings()
    try:
        signer = signing.load_signer(settings)
    except (signing.SigningKeyMissing, note.NoteError, OSError) as exc:
        fail(str(exc))
    out.print(signer.verifier.vkey(), markup=False, highlight=False, soft_wrap=True)
