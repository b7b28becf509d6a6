"""Transparency commands: signed checkpoints, Merkle proofs, offline audit bundles.

``checkpoint`` signs the tree (``--every`` keeps doing it: the compose service) and, when
Kafka is configured, publishes every checkpoint the topic has not had yet;
``proof inclusion|consistency`` print RFC 9162 proofs; ``audit bundle`` writes a
person's evidence, ``audit verify`` checks one with nothing but the file and the pinned
verifier key (no database, no server), ``audit consistency`` shows the log only grew
between two checkpoints an auditor kept.
"""

from __future__ import annotations

import json
import signal
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from psycopg import Connection

from cli.console import err, fail, ledger_session, nhs_argument, out, registered
from cli.options import KnownAt, NhsNumber, group
from consumers import checkpoints as checkpoint_feed
from domain import audit, note, transparency
from domain.evidence import NoEvidence, build_bundle
from domain.ledger import Ledger
from domain.settings import Settings, get_settings
from domain.signing import SigningKeyMissing, load_signer
from projections.measures.report import DEFINITIONS_VERSION

proof_app = group("RFC 9162 Merkle proofs of the ledger's tree.")
audit_app = group(
    "Offline evidence: bundles an auditor verifies without the database or the server."
)


def register(app: typer.Typer) -> None:
    app.command()(checkpoint)
    app.add_typer(proof_app, name="proof")
    app.add_typer(audit_app, name="audit")


def _signer(settings: Settings) -> note.Signer:
    try:
        return load_signer(settings)
    except (SigningKeyMissing, note.NoteError, OSError) as exc:
        fail(str(exc))


def checkpoint(
    every: Annotated[
        float | None,
        typer.Option(min=0.1, help="Keep issuing one every SECONDS (when the tree has grown)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Sign even if the tree has not grown.")
    ] = False,
) -> None:
    """Sign a C2SP checkpoint of the ledger's Merkle tree, store it, print the note;
    with Kafka configured, publish checkpoints the topic has not had yet."""
    settings = get_settings()
    signer = _signer(settings)
    stop = threading.Event()
    if every is not None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    with ledger_session() as ledger:
        feed = checkpoint_feed.for_settings(settings)
        try:
            last_id = None
            while True:
                try:
                    issued = _issue(ledger, signer, settings.log_origin, force)
                except transparency.InconsistentLog as exc:
                    fail(f"refusing to sign: {exc}", code=1)
                if issued.id != last_id:
                    if every is None:
                        typer.echo(issued.note, nl=False)  # the note byte for byte
                    else:
                        err.print(
                            f"checkpoint {issued.id}: tree size {issued.size}", highlight=False
                        )
                    last_id = issued.id
                if feed is not None:
                    try:
                        sent = feed.publish(ledger)
                    except Exception as exc:  # the broker may be away: try next round
                        err.print(f"publishing checkpoints failed (will retry): {exc}")
                    else:
                        if sent:
                            err.print(f"published {sent} checkpoint(s) to {feed.topic}")
                if every is None or stop.wait(every):
                    return
                force = False
        finally:
            if feed is not None:
                feed.close()


def _issue(
    ledger: Ledger, signer: note.Signer, origin: str, force: bool
) -> transparency.StoredCheckpoint:
    with ledger.connection() as conn:
        return transparency.issue_checkpoint(conn, signer, origin, force=force)


# -- proofs ------------------------------------------------------------------------------------


@proof_app.command("inclusion")
def proof_inclusion(
    position: Annotated[int, typer.Argument(min=1, help="The event's ledger position.")],
    tree_size: Annotated[
        int | None, typer.Option(help="Tree size (default: the latest checkpoint's).")
    ] = None,
) -> None:
    """The inclusion proof of the event at POSITION, as JSON (base64 hashes)."""
    _print_proof(lambda conn: transparency.inclusion_answer(conn, position, tree_size))


@proof_app.command("consistency")
def proof_consistency(
    old: Annotated[int, typer.Argument(min=0, help="The older tree size.")],
    new: Annotated[int, typer.Argument(min=0, help="The newer tree size.")],
) -> None:
    """The consistency proof between two tree sizes, as JSON (base64 hashes)."""
    _print_proof(lambda conn: transparency.consistency_answer(conn, old, new))


def _print_proof(answer: Callable[[Connection[Any]], dict[str, Any]]) -> None:
    """Print a proof as JSON; a size or position the tree cannot prove is exit code 1."""
    with ledger_session() as ledger, ledger.connection() as conn:
        try:
            out.print_json(json.dumps(answer(conn)))
        except (transparency.TreeError, ValueError) as exc:
            fail(str(exc), code=1)


# -- audit -------------------------------------------------------------------------------------


@audit_app.command("bundle")
def audit_bundle(
    nhs_number: NhsNumber,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the bundle (JSON).")],
    known_at: KnownAt = None,
) -> None:
    """Write the person's evidence: events as recorded, inclusion proofs, a signed
    checkpoint (a new one if the latest does not cover the person's last event)."""
    nhs = nhs_argument(nhs_number)
    settings = get_settings()
    with ledger_session() as ledger:
        patient = registered(ledger, nhs, "audit bundle")
        try:
            signer = load_signer(settings)
        except (SigningKeyMissing, note.NoteError, OSError):
            signer = None  # a stored checkpoint may still cover the events
        try:
            bundle = build_bundle(
                ledger,
                patient,
                signer=signer,
                origin=settings.log_origin,
                definitions_version=DEFINITIONS_VERSION,
                known_at=known_at,
            )
        except (NoEvidence, transparency.TreeError, transparency.InconsistentLog) as exc:
            fail(str(exc), code=1)
    out_file.write_text(json.dumps(bundle, indent=1) + "\n")
    size = note.parse_checkpoint(bundle["checkpoint"].split("\n\n")[0] + "\n").size
    err.print(
        f"wrote {len(bundle['events'])} events of patient {patient} with inclusion proofs"
        f" against the checkpoint of tree size {size} to {out_file}",
        highlight=False,
    )


def _verifier(key: str) -> note.Verifier:
    try:
        return note.parse_verifier(key)
    except note.NoteError as exc:
        fail(f"--key: {exc}")


@audit_app.command("verify")
def audit_verify(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="An audit bundle.")],
    key: Annotated[str, typer.Option(help="The log's verifier key (vkey) you pinned.")],
    origin: Annotated[
        str | None, typer.Option(help="Also require the checkpoint to be of this log.")
    ] = None,
) -> None:
    """Check a bundle with no database and no server: the checkpoint's signature, every
    inclusion proof, each content hash and the chain; exit 1 naming what failed."""
    verifier = _verifier(key)
    try:
        bundle = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read the bundle: {exc}", code=1)
    report = audit.verify_bundle(bundle, verifier, origin)
    if not report.ok:
        for failure in report.failures:
            err.print(f"FAILED: {failure}", markup=False, highlight=False)
        raise typer.Exit(1)
    assert report.checkpoint is not None
    out.print(
        f"ok: {report.events} events verified against the checkpoint of"
        f" {report.checkpoint.origin} at tree size {report.checkpoint.size}"
        f" signed by {verifier.name}+{verifier.key_id.hex()}",
        highlight=False,
    )


@audit_app.command("consistency")
def audit_consistency(
    old: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A kept checkpoint.")],
    new: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A later checkpoint.")],
    key: Annotated[str, typer.Option(help="The log's verifier key (vkey) you pinned.")],
    proof: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="The proof (JSON of /v1/transparency/consistency)."),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Fetch the proof from this API (e.g. http://host:8000).")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key for --url.")] = None,
) -> None:
    """Show the log only grew from OLD to NEW (RFC 9162 consistency proof, from the API,
    a file, or else the configured database); exit 1 if history was rewritten."""
    verifier = _verifier(key)
    old_note, new_note = old.read_text(), new.read_text()
    try:
        sizes = (
            note.open_checkpoint(old_note, verifier).size,
            note.open_checkpoint(new_note, verifier).size,
        )
    except note.NoteError:
        sizes = None  # check_consistency names which one
    hashes: list[bytes] | None = None
    if sizes is not None and sizes[0] <= sizes[1]:
        answer = _consistency_proof(sizes, proof, url, api_key)
        if answer is not None:
            hashes = [audit.unb64(h) for h in answer["hashes"]]
    result = audit.check_consistency(old_note, new_note, verifier, hashes)
    if not result.ok:
        err.print(f"FAILED: {result.failure}", markup=False, highlight=False)
        raise typer.Exit(1)
    assert result.old is not None and result.new is not None
    out.print(
        f"ok: the log at tree size {result.new.size} extends the log at size {result.old.size}",
        highlight=False,
    )


def _consistency_proof(
    sizes: tuple[int, int], proof: Path | None, url: str | None, api_key: str | None
) -> dict[str, Any] | None:
    if proof is not None:
        return json.loads(proof.read_text())
    if url is not None:
        query = urllib.parse.urlencode({"from": sizes[0], "to": sizes[1]})
        request = urllib.request.Request(f"{url.rstrip('/')}/v1/transparency/consistency?{query}")
        if api_key:
            request.add_header("Authorization", f"Bearer {api_key}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.loads(answer.read())
        except (urllib.error.URLError, ValueError) as exc:
            fail(f"cannot fetch the consistency proof: {exc}", code=1)
    with ledger_session() as ledger, ledger.connection() as conn:
        try:
            return transparency.consistency_answer(conn, *sizes)
        except transparency.TreeError as exc:
            err.print(f"the ledger cannot prove consistency: {exc}", markup=False)
            return None
