"""The log's checkpoint signing key: where it lives and how it comes to exist.

The key file holds one line, the signer key string of ``domain/note.py``
(``PRIVATE+KEY+<name>+<id>+<base64>``), readable by its owner only. Its path is
``CAREJOURNEY_SIGNING_KEY_FILE`` or ``<CAREJOURNEY_DATA_DIR>/checkpoint-signing.key``.
On the embedded default (no ``CAREJOURNEY_DATABASE_URL``, no key file named) a key is
made on first use, as the API keys file is, so a demo ledger signs checkpoints at once;
a configured deployment must make its key deliberately (``keys signing-create``), so a
lost volume never silently swaps the key auditors pinned.
"""

from __future__ import annotations

import os
from pathlib import Path

from domain import note
from domain.settings import Settings

KEY_FILE_NAME = "checkpoint-signing.key"


class SigningKeyMissing(Exception):
    """No signing key where the settings say, and none may be made here."""


def key_path(settings: Settings) -> Path:
    return settings.signing_key_file or settings.data_dir / KEY_FILE_NAME


def create_key(path: Path, name: str, *, replace: bool = False) -> note.Signer:
    """Make a key pair and write the signer key (mode 0600); refuses to overwrite."""
    signer = note.new_signer(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        msg = f"a signing key already exists at {path}"
        raise FileExistsError(msg) from None
    with os.fdopen(fd, "w") as out:
        out.write(signer.skey() + "\n")
    return signer


def read_key(path: Path) -> note.Signer:
    return note.parse_signer(path.read_text())


def load_signer(settings: Settings) -> note.Signer:
    """The configured signer; on the embedded default, made on first use."""
    path = key_path(settings)
    if path.exists():
        return read_key(path)
    if settings.signing_key_file is None and settings.database_url is None:
        try:
            return create_key(path, settings.log_origin)
        except FileExistsError:  # another process made it first
            return read_key(path)
    msg = (
        f"no checkpoint signing key at {path}: make one with `carejourney keys signing-create`"
        " (or set CAREJOURNEY_SIGNING_KEY_FILE)"
    )
    raise SigningKeyMissing(msg)
