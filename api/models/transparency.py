"""Transparency answers: RFC 9162 proofs with base64 hashes (as C2SP tooling writes them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

ROOT = "LMp14Ybc0oC7ref4q1Jeghp/e0z/d+p5dKX2By7GlcA="
LEAF = "Fy+bDlSuTo7NGYotin0g/5nb2/FC4EJqQDGQdvnLWYM="
SIBLING = "50ZI0KawJnCNInc+zDkMMOIqvlkF0Jv3L6UejI9aQRE="


class InclusionProof(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "position": 1,
                    "leaf_index": 0,
                    "tree_size": 2,
                    "leaf_hash": LEAF,
                    "root_hash": ROOT,
                    "hashes": [SIBLING],
                }
            ]
        }
    }

    position: int = Field(description="The event's ledger position.")
    leaf_index: int = Field(description="Its leaf in the tree (events in position order).")
    tree_size: int
    leaf_hash: str = Field(description="base64 SHA-256(0x00 || the 32 chain-hash bytes).")
    root_hash: str = Field(description="base64 root of the tree of tree_size leaves.")
    hashes: list[str] = Field(description="base64 PATH(leaf_index, D[tree_size]), leaf first.")


class ConsistencyProof(BaseModel):
    from_: int = Field(alias="from", description="Older tree size.")
    to: int = Field(description="Newer tree size.")
    from_root: str = Field(description="base64 root at the older size.")
    to_root: str = Field(description="base64 root at the newer size.")
    hashes: list[str] = Field(description="base64 PROOF(from, D[to]).")

    model_config = {
        "populate_by_name": True,
        "json_schema_extra": {
            "examples": [
                {"from": 1, "to": 2, "from_root": LEAF, "to_root": ROOT, "hashes": [SIBLING]}
            ]
        },
    }
