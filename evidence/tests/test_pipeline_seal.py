"""Sealing what the real pipeline produces: the seeded simulator, and one real FRR twin."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from evidence.services import bundle_verify, run_seal
from evidence.tests.conftest import DATA, LAB

pytestmark = pytest.mark.django_db


def preflight(backend: str, run_id: str) -> dict:
    from preflight.core.change import change_load
    from preflight.core.pipeline import run_preflight
    from twin.topology import load_lab

    change = change_load((DATA / "change_add_static.yml").read_text(), load_lab(LAB))
    return run_preflight(LAB, change, backend=backend, run_id=run_id, converge_timeout=90)


def test_a_simulator_result_seals_and_verifies(evidence_home, tmp_path):
    result = preflight("simulator", "evtest-sim")
    outcome = run_seal(result, lab_dir=LAB, change_text=(DATA / "change_add_static.yml").read_text(),
                       out_dir=tmp_path / "sim", frameworks=["soc2-cc8.1"], operator="olivia")  # fmt: skip
    assert all(c.ok for c in bundle_verify(outcome.pdf_path.read_bytes()))
    text = subprocess.run(["pdftotext", str(outcome.pdf_path), "-"], capture_output=True, text=True).stdout
    assert "not promotable" in text  # a simulated twin says so on the first page


def _twin_available() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if not os.path.exists("/usr/lib/frr/zebra") or shutil.which("ip") is None:
        return "needs FRR and iproute2"
    return None


@pytest.mark.twin
@pytest.mark.slow
@pytest.mark.skipif(_twin_available() is not None, reason=str(_twin_available()))
def test_a_real_twin_result_seals_and_verifies(evidence_home, tmp_path):
    result = preflight("netns", f"evtest-netns-{os.getpid()}")
    assert result["twin"]["tier"] == "real" and result["twin"]["frr_version"], result["reasons"]
    # The pipeline tore its twin down: no namespace with this twin's prefix is left.
    prefix = result["twin"]["facts"]["namespace_prefix"]
    assert prefix.startswith("aegis-")
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not [line for line in namespaces.splitlines() if line.startswith(prefix)]
    outcome = run_seal(result, lab_dir=LAB, change_text=None, out_dir=tmp_path / "real",
                       frameworks=["nerc-cip-010-4"], operator="olivia")  # fmt: skip
    checks = bundle_verify(outcome.bundle_path.read_bytes())
    assert all(c.ok for c in checks), [(c.name, c.detail) for c in checks]
    text = subprocess.run(["pdftotext", str(outcome.pdf_path), "-"], capture_output=True, text=True).stdout
    assert f"FRR {result['twin']['frr_version']}" in text and outcome.digest in text
