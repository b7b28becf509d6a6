"""Checkpoint signing: C2SP signed-note Ed25519 keys and notes, the key file."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from domain import note, signing
from domain.settings import Settings


def test_key_id_vkey_and_skey_follow_the_spec() -> None:
    signer = note.new_signer("example.com/log")
    raw = signer.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = hashlib.sha256(b"example.com/log\n\x01" + raw).digest()[:4]
    vkey = signer.verifier.vkey()
    name, hex_id, encoded = vkey.split("+", 2)
    assert (name, hex_id) == ("example.com/log", key_id.hex())
    assert base64.b64decode(encoded) == b"\x01" + raw
    assert note.parse_verifier(vkey).key_id == key_id
    again = note.parse_signer(signer.skey())
    assert again.verifier.vkey() == vkey
    with pytest.raises(note.NoteError):
        note.parse_verifier(vkey.replace(hex_id, "00000000"))
    with pytest.raises(note.NoteError):
        note.new_signer("has space")


def test_a_checkpoint_note_signs_and_opens() -> None:
    signer = note.new_signer("example.com/log")
    text = note.checkpoint_text("example.com/log", 7, b"\x11" * 32)
    root = base64.b64encode(b"\x11" * 32).decode()
    assert text == f"example.com/log\n7\n{root}\n"
    signed = note.sign(text, signer)
    body, _, line = signed.partition("\n\n")
    assert body + "\n" == text
    assert line.startswith("\u2014 example.com/log ") and line.endswith("\n")
    blob = base64.b64decode(line.split(" ")[2])
    assert blob[:4] == signer.verifier.key_id and len(blob) == 68
    signer.private_key.public_key().verify(blob[4:], text.encode())
    checkpoint = note.open_checkpoint(signed, signer.verifier, "example.com/log")
    assert (checkpoint.size, checkpoint.root) == (7, b"\x11" * 32)
    # A cosignature by an unknown key is ignored; a forged one by the known key is not.
    other = note.new_signer("witness.example/w1")
    cosigned = signed + note.sign(text, other).partition("\n\n")[2]
    assert note.open_checkpoint(cosigned, signer.verifier).size == 7
    with pytest.raises(note.NoteError, match="does not verify"):
        note.open_note(signed.replace("\n7\n", "\n8\n"), signer.verifier)
    with pytest.raises(note.NoteError, match="no signature by"):
        note.open_note(signed, other.verifier)
    with pytest.raises(note.NoteError):
        note.parse_checkpoint("origin\n07\nAAAA\n")


def test_embedded_default_makes_the_key_on_first_use(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=None, signing_key_file=None)
    first = signing.load_signer(settings)
    path = tmp_path / signing.KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("PRIVATE+KEY+carejourney.local/ledger+")
    assert signing.load_signer(settings).verifier.vkey() == first.verifier.vkey()


def test_a_configured_deployment_must_make_its_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://db/x")
    with pytest.raises(signing.SigningKeyMissing, match="keys signing-create"):
        signing.load_signer(settings)
    made = signing.create_key(signing.key_path(settings), "log.example/a")
    with pytest.raises(FileExistsError):
        signing.create_key(signing.key_path(settings), "log.example/a")
    assert signing.load_signer(settings).verifier.vkey() == made.verifier.vkey()
