"""C2SP signed notes with Ed25519, and the C2SP tlog-checkpoint body they carry.

    checkpoint text   <origin>\\n<tree size>\\n<base64 root hash>\\n
    signed note       <text>\\n— <key name> <base64(key id || signature)>\\n
    key id            SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]
    verifier key      <name>+<hex key id>+<base64(0x01 || public key)>
    signer key        PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>

(c2sp.org/signed-note, c2sp.org/tlog-checkpoint; the key strings are the ones Go's
``golang.org/x/mod/sumdb/note`` reads, so its tools verify our checkpoints.) Signing and
verifying are ``cryptography``'s Ed25519; no storage, no network: the offline audit uses
this module unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
DASH = "\u2014 "
NAME = re.compile(r"^[^\s+]+$")


class NoteError(ValueError):
    """A note, key or checkpoint that does not parse or does not verify."""


@dataclass(frozen=True, slots=True)
class Verifier:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    def vkey(self) -> str:
        raw = self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(ED25519 + raw).decode()}"


@dataclass(frozen=True, slots=True)
class Signer:
    name: str
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        public = self.private_key.public_key()
        return Verifier(self.name, key_id(self.name, public), public)

    def skey(self) -> str:
        seed = self.private_key.private_bytes_raw()
        encoded = base64.b64encode(ED25519 + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{encoded}"


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + raw).digest()[:4]


def _check_name(name: str) -> str:
    if not NAME.match(name):
        msg = f"key name {name!r} must be non-empty, without spaces or '+'"
        raise NoteError(msg)
    return name


def new_signer(name: str) -> Signer:
    return Signer(_check_name(name), Ed25519PrivateKey.generate())


def parse_signer(skey: str) -> Signer:
    parts = skey.strip().split("+", 4)  # the base64 key may itself hold "+"
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        msg = "not a signer key (PRIVATE+KEY+<name>+<id>+<key>)"
        raise NoteError(msg)
    name, hex_id, encoded = parts[2:]
    raw = _b64(encoded, "signer key")
    if len(raw) != 33 or raw[:1] != ED25519:
        msg = "signer key is not an Ed25519 seed"
        raise NoteError(msg)
    signer = Signer(_check_name(name), Ed25519PrivateKey.from_private_bytes(raw[1:]))
    if signer.verifier.key_id.hex() != hex_id.lower():
        msg = "signer key id does not match its key"
        raise NoteError(msg)
    return signer


def parse_verifier(vkey: str) -> Verifier:
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        msg = "not a verifier key (<name>+<hex id>+<base64 key>)"
        raise NoteError(msg)
    name, hex_id, encoded = parts
    raw = _b64(encoded, "verifier key")
    if len(raw) != 33 or raw[:1] != ED25519:
        msg = "verifier key is not an Ed25519 key (type 0x01)"
        raise NoteError(msg)
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    verifier = Verifier(_check_name(name), key_id(name, public), public)
    if verifier.key_id.hex() != hex_id.lower():
        msg = "verifier key id does not match its key"
        raise NoteError(msg)
    return verifier


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        msg = f"{what}: bad base64"
        raise NoteError(msg) from exc


# -- notes -----------------------------------------------------------------------------


def sign(text: str, signer: Signer) -> str:
    if not text.endswith("\n"):
        msg = "note text must end with a newline"
        raise NoteError(msg)
    signature = signer.private_key.sign(text.encode())
    blob = base64.b64encode(signer.verifier.key_id + signature).decode()
    return f"{text}\n{DASH}{signer.name} {blob}\n"


def open_note(note: str, verifier: Verifier) -> str:
    """The text of a note signed by ``verifier``; NoteError if it is not.

    Signatures by other keys are ignored (the spec's rule: they allow cosigning and
    rotation); one by this key that fails rejects the note."""
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        msg = "note holds control characters"
        raise NoteError(msg)
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        msg = "not a signed note (no blank line before the signatures)"
        raise NoteError(msg)
    text += "\n"
    verified = False
    for line in signatures[:-1].split("\n"):
        if not line.startswith(DASH):
            msg = f"bad signature line {line!r}"
            raise NoteError(msg)
        name, _, encoded = line[len(DASH) :].partition(" ")
        blob = _b64(encoded, "signature")
        if len(blob) < 5:
            msg = "signature too short"
            raise NoteError(msg)
        if name != verifier.name or blob[:4] != verifier.key_id:
            continue
        try:
            verifier.public_key.verify(blob[4:], text.encode())
        except InvalidSignature as exc:
            msg = f"signature by {name} does not verify"
            raise NoteError(msg) from exc
        verified = True
    if not verified:
        msg = f"no signature by {verifier.name}+{verifier.key_id.hex()}"
        raise NoteError(msg)
    return text


# -- checkpoints -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    return Checkpoint(origin, size, root).text()


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
        msg = "a checkpoint is at least three non-empty lines"
        raise NoteError(msg)
    origin, size_text, root_text = lines[:3]
    if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        msg = f"bad tree size {size_text!r}"
        raise NoteError(msg)
    root = _b64(root_text, "root hash")
    if len(root) != 32:
        msg = "root hash is not 32 bytes"
        raise NoteError(msg)
    return Checkpoint(origin, int(size_text), root)


def open_checkpoint(note: str, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    """A signed checkpoint, verified; with ``origin``, also of that log."""
    checkpoint = parse_checkpoint(open_note(note, verifier))
    if origin is not None and checkpoint.origin != origin:
        msg = f"checkpoint is of log {checkpoint.origin!r}, not {origin!r}"
        raise NoteError(msg)
    return checkpoint
