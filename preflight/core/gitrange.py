"""A lab kept in git: the lab at REV_A is the baseline, the router configs at REV_B the desired state.

`preflight LAB --git A..B`: LAB is the lab folder inside a git work tree. The lab as committed at
A is exported into a scratch folder (so uncommitted edits never leak into the baseline), and each
router whose config file differs between A and B contributes its B text as desired config. A
change of wiring (nodes, links, kinds, images, daemons, exec lines) between A and B is refused:
it is not a config change and frr-reload cannot express it.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from preflight.core.change import ChangeError
from twin.base import Topology
from twin.topology import load_lab

MAX_ARCHIVE_BYTES = 64 * 1024 * 1024


@dataclass
class GitDesired:
    baseline_dir: Path  # the lab as committed at A (a scratch folder; the caller removes `scratch`)
    scratch: tempfile.TemporaryDirectory[str]
    topology: Topology
    desired: dict[str, str]  # router -> its full config at B (only routers whose config changed)
    rev_a: str  # resolved commit ids
    rev_b: str
    origin: str  # "git A..B" for the change record


def _git(repo: Path, *args: str, binary: bool = False) -> bytes:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise ChangeError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _export(repo: Path, rev: str, rel: str, dest: Path) -> Path:
    """Write the lab folder `rel` as committed at `rev` under `dest`; return its path there."""
    data = _git(repo, "archive", "--format=tar", rev, "--", rel or ".")
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ChangeError(f"the lab at {rev} is larger than {MAX_ARCHIVE_BYTES >> 20} MiB")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")  # "data": no absolute paths, links out of dest, devices
    return dest / rel if rel else dest


def _wiring(topology: Topology) -> dict[str, object]:
    """What a config change may not alter: nodes and how they are built and wired."""
    return {
        "nodes": {n: (node.role, node.image, sorted(node.daemons), list(node.exec), node.config_path)
                  for n, node in sorted(topology.nodes.items())},
        "links": sorted(repr(link) for link in topology.links),
    }


def git_desired(lab_dir: str | Path, revs: str) -> GitDesired:
    """Baseline lab at A and desired router configs at B for `revs` = "A..B" (see module docstring)."""
    if revs.count("..") != 1 or "..." in revs:
        raise ChangeError(f"--git {revs!r}: give two revisions as REV_A..REV_B (e.g. HEAD~1..HEAD)")
    a, b = revs.split("..")
    if not a or not b:
        raise ChangeError(f"--git {revs!r}: both revisions are needed (REV_A..REV_B)")
    lab = Path(lab_dir).resolve()
    if not lab.is_dir():
        raise ChangeError(f"{lab_dir}: not a folder")
    top = Path(_git(lab, "rev-parse", "--show-toplevel").decode().strip())
    rel = lab.relative_to(top).as_posix() if lab != top else ""
    rev_a = _git(top, "rev-parse", "--verify", f"{a}^{{commit}}").decode().strip()
    rev_b = _git(top, "rev-parse", "--verify", f"{b}^{{commit}}").decode().strip()
    scratch = tempfile.TemporaryDirectory(prefix="aegis-git-")
    try:
        lab_a = _export(top, rev_a, rel, Path(scratch.name) / "a")
        lab_b = _export(top, rev_b, rel, Path(scratch.name) / "b")
        topo_a = load_lab(lab_a)
        topo_b = load_lab(lab_b)
        wa, wb = _wiring(topo_a), _wiring(topo_b)
        if wa != wb:
            what = sorted(set(wa["nodes"]) ^ set(wb["nodes"]))  # type: ignore[arg-type]
            detail = f" (nodes added or removed: {', '.join(what)})" if what else ""
            raise ChangeError(
                f"the topology of {topo_a.name!r} changed between {a} and {b}{detail}: a change of wiring "
                "(nodes, links, images, daemons) is not a config change; land it on its own and preflight "
                "the config edits against the new lab")
        desired = {n: topo_b.nodes[n].frr_conf or "" for n in topo_b.routers()
                   if (topo_b.nodes[n].frr_conf or "") != (topo_a.nodes[n].frr_conf or "")}
        if not desired:
            raise ChangeError(f"no router config of lab {topo_a.name!r} changed between {a} and {b}")
    except BaseException:
        scratch.cleanup()
        raise
    return GitDesired(baseline_dir=lab_a, scratch=scratch, topology=topo_a, desired=desired,
                      rev_a=rev_a, rev_b=rev_b, origin=f"git {a}..{b} ({rev_a[:12]}..{rev_b[:12]})")
