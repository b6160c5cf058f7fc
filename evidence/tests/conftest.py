"""Shared fixtures for the evidence tests: a private AEGIS_HOME and realistic result documents."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from evidence.core import merkle
from evidence.core.bundle import (
    bundle_assemble,
    bundle_dumps,
    lab_files_collect,
    ledger_leaf_data,
    statement_build,
    statement_seal,
)
from evidence.core.checkpoint import checkpoint_sign, tlog_proof_format
from evidence.core.keys import SigningKey

DATA = Path(__file__).with_name("data")
REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "labs" / "triangle"
ORIGIN = "aegis.test/ledger"


def result_fixture(name: str) -> dict:
    """A result document as the pipeline writes it (needs_approval: from the simulator;
    blocked: the same, edited by hand to carry every kind of finding, an LLM and a real tier)."""
    return copy.deepcopy(json.loads((DATA / f"result_{name}.json").read_text()))


@pytest.fixture
def result_needs_approval() -> dict:
    return result_fixture("needs_approval")


@pytest.fixture
def result_blocked() -> dict:
    return result_fixture("blocked")


@pytest.fixture
def change_text() -> str:
    return (DATA / "change_add_static.yml").read_text()


@pytest.fixture
def evidence_home(settings, tmp_path):
    """AEGIS_HOME, the site key and the ledger origin of one test, nothing shared."""
    settings.AEGIS_HOME = tmp_path / "home"
    settings.AEGIS_SITE_KEY_FILE = tmp_path / "home" / "keys" / "site_ed25519.pem"
    settings.AEGIS_LEDGER_ORIGIN = ORIGIN
    settings.AEGIS_PDF_PAGE_SIZE = "A4"
    return tmp_path / "home"


def core_bundle(result: dict, key: SigningKey, *, change_text: str | None = None, earlier_leaves: int = 5):
    """A sealed bundle built with the core only (no database): an in-memory ledger in which
    this bundle is the last of `earlier_leaves + 1` leaves. Returns (bundle dict, bytes, statement)."""
    statement = statement_build(
        result,
        change_text=change_text,
        lab_files=lab_files_collect(LAB),
        operator="olivia",
        frameworks=["nist-800-53r5"],
        controls=[],
        sealed_at="2026-11-25T19:40:00Z",
        keyid=key.keyid,
        ledger_origin=ORIGIN,
    )
    envelope, digest = statement_seal(statement, key)
    leaves = [merkle.leaf_hash(b"earlier %d" % i) for i in range(earlier_leaves)]
    leaves.append(merkle.leaf_hash(ledger_leaf_data("bundle", digest)))
    index = len(leaves) - 1
    note = checkpoint_sign(ORIGIN, len(leaves), merkle.root(leaves), key)
    ledger = {
        "origin": ORIGIN,
        "kind": "bundle",
        "index": index,
        "leaf_hash": leaves[index].hex(),
        "tlog_proof": tlog_proof_format(index, merkle.inclusion_proof(leaves, index), note),
    }
    bundle = bundle_assemble(envelope, digest, ledger, {key.keyid: key.public_pem()})
    return bundle, bundle_dumps(bundle), statement
