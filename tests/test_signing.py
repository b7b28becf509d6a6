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

ROOT = Path(__file__).resolve().parent.parent


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


def test_the_worked_example_of_docs_integrity_md() -> None:
    """docs/integrity.md's example, recomputed: Ed25519 is deterministic, so the note is."""
    from datetime import datetime
    from uuid import UUID

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from domain import merkle
    from domain.integrity import chain_hash

    seed = hashlib.sha256(b"carejourney docs/integrity.md example key").digest()
    signer = note.Signer("carejourney.example/ledger", Ed25519PrivateKey.from_private_bytes(seed))
    patient = UUID("7a1d3c6e-0b8f-4f4e-9a51-2d6c1e0f9b11")
    content = hashlib.sha256(b"example content").hexdigest()
    assert content == "a2dee47ba6268925da97750ab742baf67f02e2fb54ce23d499fb66a5b0222903"
    h1 = chain_hash(
        position=1,
        patient_id=patient,
        version=1,
        recorded_at=datetime.fromisoformat("2026-03-02T10:15:00.123456+00:00"),
        prev_hash=None,
        content_digest=content,
    )
    h2 = chain_hash(
        position=2,
        patient_id=patient,
        version=2,
        recorded_at=datetime.fromisoformat("2026-03-02T10:16:00+00:00"),
        prev_hash=h1,
        content_digest=hashlib.sha256(b"more content").hexdigest(),
    )
    doc = (ROOT / "docs" / "integrity.md").read_text()
    leaves = [merkle.leaf_hash(bytes.fromhex(h)) for h in (h1, h2)]
    root = merkle.node_hash(*leaves)
    for value in (h1, h2, leaves[0].hex(), leaves[1].hex(), root.hex()):
        assert value in doc
    signed = note.sign(note.checkpoint_text("carejourney.example/ledger", 2, root), signer)
    assert signed.rstrip("\n") in doc
    assert signer.verifier.vkey() in doc
