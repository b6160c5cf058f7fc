"""Every example change of the bundled labs on the real twin (FRR in namespaces): its expected
verdict and reasons, rollback verified, and nothing left running afterwards.

Few and real: one twin per example that gets past the static checks (~20 s each).

One example of each bundled lab besides the triangle runs through the `http` backend instead:
a twin agent on loopback (in this process, real HTTP) serving the same netns twins. The
example's expectations are what netns gives (every other example of the lab runs on netns), so
the agent must give the same result for the same lab and change (issue 11) - at no extra twin.
The triangle is compared run against run in twin/tests/test_agent_netns.py, a fabric split
across two agents in twin/tests/test_split_netns.py.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from preflight.core.change import ChangeError, change_load
from preflight.core.guards import GuardRejection
from preflight.core.pipeline import run_preflight

from .conftest import real_twin_possible, twin_leftovers
from .examples import examples

pytestmark = [pytest.mark.twin, pytest.mark.slow,
              pytest.mark.skipif(real_twin_possible() is not None, reason=str(real_twin_possible()))]

EXAMPLES = examples()
THROUGH_AGENT = {"bfd/bfd_lost", "campus/adjacency_lost", "fabric/session_lost"}


class Seen:
    """Records the twin a run spawned, from its progress events, so leftovers can be checked
    even when the run fails half-way."""

    def __init__(self):
        self.prefixes: set[str] = set()

    def __call__(self, step, status, message, data):
        for key in ("namespace_prefix", "prefix"):
            if isinstance(data.get(key), str) and data[key].startswith("aegis-"):
                self.prefixes.add(data[key])


# The README's demo case runs through the CLI, which seals into the ledger (database).
@pytest.mark.parametrize("ex", [pytest.param(e, id=e.id, marks=[pytest.mark.django_db] if e.id == "triangle/ship_ready"
                                             else []) for e in EXAMPLES])
def test_example_change_on_the_real_twin(ex, tmp_path, request):
    from twin.topology import load_lab

    topology = load_lab(ex.lab)
    text = ex.path.read_text()
    if ex.exit_code == 2:
        with pytest.raises((ChangeError, GuardRejection)):
            run_preflight(ex.lab, change_load(text, topology), backend="netns")
        return
    seen = Seen()
    result = None
    try:
        if ex.id == "triangle/ship_ready":
            settings = request.getfixturevalue("settings")
            settings.AEGIS_HOME = tmp_path / "home"
            settings.AEGIS_SITE_KEY_FILE = tmp_path / "home" / "keys" / "site_ed25519.pem"
            result = _readme_demo(ex, tmp_path)
        elif ex.id in THROUGH_AGENT:
            result = _through_agent(ex, change_load(text, topology), seen)
        else:
            result = run_preflight(ex.lab, change_load(text, topology), backend="netns", progress=seen,
                                   failures=ex.failures)
        codes = [r["code"] for r in result["reasons"]]
        assert result["verdict"] == ex.verdict, result["reasons"]
        assert set(ex.reasons) <= set(codes), result["reasons"]
        assert result["twin"]["spawned"] is ex.spawned
        if ex.mentions:
            assert any(ex.mentions in r["message"] for r in result["reasons"]), result["reasons"]
        if ex.witness:
            seen_results = {w["result"] for w in result["dataplane"]["witnessed"]}
            assert seen_results == {ex.witness}, result["dataplane"]["witnessed"]
        if ex.spawned:
            assert result["twin"]["tier"] == "real" and result["twin"]["frr_version"]
            assert result["rollback"]["verified"] is True, result["rollback"]["mismatch"]
            if "APPLY_REJECTED" not in codes:
                assert result["rollback"]["lines"], "a change that applied must leave rollback lines"
    finally:
        if result is not None:
            prefix = (result["twin"].get("facts") or {}).get("namespace_prefix")
            if prefix:
                seen.prefixes.add(prefix)
        for prefix in seen.prefixes:
            assert twin_leftovers(prefix) == []


def _through_agent(ex, change, seen):
    from twin.netns import NetnsBackend
    from twin.remote import RemoteBackend
    from twin.tests.agent_helpers import TOKEN, live_agent

    with live_agent(NetnsBackend()) as agent:
        result = run_preflight(ex.lab, change, backend=RemoteBackend(agent.url, token=TOKEN), progress=seen,
                               failures=ex.failures)
        assert result["twin"]["backend"] == "http" and result["twin"]["tier"] == "real"
        assert agent.agent.status()["twins"] == []  # the run tore its twin down through the agent
    return result


def _readme_demo(ex, out_dir):
    """`manage.py preflight labs/triangle --change labs/triangle/changes/ship_ready.yml --out DIR`."""
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("preflight", str(ex.lab), "--change", str(ex.path), "--out", str(out_dir), stdout=out)
    result = json.loads((out_dir / "result.json").read_text())
    assert exit_.value.code == 0, out.getvalue()
    assert "verdict: ship_ready" in out.getvalue() and "rollback (restored" in out.getvalue()
    bundle = json.loads((out_dir / "bundle.json").read_text())
    assert f"sealed: {bundle['digest']}" in out.getvalue()
    assert (out_dir / "report.pdf").read_bytes().startswith(b"%PDF")
    return result
