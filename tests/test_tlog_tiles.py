"""The tree served as C2SP tlog-tiles (c2sp.org/tlog-tiles), checked by a client written
here from the spec alone: tile paths, then a real ledger of 600 events whose tiles and
entry bundles rebuild the signed root, hash to each other level by level, and are 404
where the tree does not hold them yet."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from api.routes.transparency import parse_tile_path
from domain import note, transparency
from domain.ledger import Ledger
from tests.envelopes import envelope, later
from tests.fixtures_api import auth


@pytest.mark.parametrize(
    ("index", "path"),
    [(0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_tile_indexes_are_spelt_as_the_spec_says(index: int, path: str) -> None:
    assert transparency.tile_index_path(index) == path
    assert parse_tile_path(f"3/{path}") == (3, index, 256)
    assert parse_tile_path(f"entries/{path}.p/17") == (None, index, 17)


@pytest.mark.parametrize(
    "path",
    [
        "00/000",
        "0/0",
        "0/1000",
        "0/x000/001",
        "0/000.p/0",
        "0/000.p/007",
        "0/000.p/256",
        "64x/000",
        "0/000/",
        "entries/000.p/",
        "-1/000",
        "0/x1/000",
    ],
)
def test_other_spellings_are_not_tile_paths(path: str) -> None:
    with pytest.raises(ValueError, match="not a tile path"):
        parse_tile_path(path)


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(hashes: list[bytes]) -> bytes:
    """RFC 6962 MTH over already-hashed leaves (the spec's recursive definition)."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node(mth(hashes[:k]), mth(hashes[k:]))


def split(blob: bytes) -> list[bytes]:
    assert len(blob) % 32 == 0
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def entries(blob: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(blob):
        size = int.from_bytes(blob[at : at + 2], "big")
        out.append(blob[at + 2 : at + 2 + size])
        at += 2 + size
    return out


def test_a_tiles_client_rebuilds_the_signed_tree(
    client: TestClient, publish: Callable, ledger: Ledger
) -> None:
    publish(envelope(), *(envelope("ContactRecorded", at=later(i)) for i in range(1, 300)))
    publish(*(envelope("ContactRecorded", at=later(i)) for i in range(300, 600)))
    signer = note.new_signer("carejourney.test/ledger")
    with ledger.connection() as conn:
        transparency.issue_checkpoint(conn, signer, signer.name)
    base, headers = "/v1/transparency/tlog", auth("auditor")

    def get(path: str) -> bytes:
        answer = client.get(f"{base}/{path}", headers=headers)
        assert answer.status_code == 200, (path, answer.text)
        if path.startswith("tile/"):
            assert answer.headers["content-type"] == "application/octet-stream"
            assert "immutable" in answer.headers["cache-control"]
        return answer.content

    signed = client.get(f"{base}/checkpoint", headers=headers)
    assert signed.headers["content-type"] == "text/plain; charset=utf-8"
    assert signed.headers["cache-control"] == "no-cache"
    checkpoint = note.parse_checkpoint(note.open_note(signed.text, signer.verifier))
    assert checkpoint.size == 600  # 2 full level-0 tiles, a partial of 88, level 1 of 2

    level0 = split(get("tile/0/000")) + split(get("tile/0/001")) + split(get("tile/0/002.p/88"))
    assert len(level0) == 600 and mth(level0) == checkpoint.root
    level1 = split(get("tile/1/000.p/2"))
    assert level1 == [mth(level0[:256]), mth(level0[256:512])]
    assert split(get("tile/0/002.p/5")) == level0[512:517]  # any narrower width too
    data = entries(get("tile/entries/000")) + entries(get("tile/entries/001"))
    data += entries(get("tile/entries/002.p/88"))
    assert [len(d) for d in data] == [32] * 600 and [leaf(d) for d in data] == level0
    with ledger.connection() as conn:
        hashes = conn.execute("SELECT hash FROM ledger_events ORDER BY position").fetchall()
    assert [bytes.fromhex(r["hash"]) for r in hashes] == data  # the leaves: chain hashes

    for missing in (
        "0/002",
        "0/002.p/89",
        "0/003.p/1",
        "1/000",
        "1/000.p/3",
        "2/000.p/1",
        "entries/002",
        "entries/003.p/1",
        "0/0",
        "0/x000/002",
        "64/000.p/1",
    ):
        answer = client.get(f"{base}/tile/{missing}", headers=headers)
        assert answer.status_code == 404, missing
        assert answer.headers["content-type"] == "application/problem+json"
    assert client.get(f"{base}/tile/0/000").status_code == 401
