"""Labs: the `Lab` rows for the folders a run may use (AEGIS_LABS_DIR, or a folder named on the CLI)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.utils.text import slugify

from aegis_base.core.files import sha256_digest
from preflight.models import Lab
from twin.base import Topology, TopologyError
from twin.topology import load_lab

log = logging.getLogger("aegis.web")


def lab_dir(lab: Lab) -> Path:
    folder = Path(lab.folder)
    return folder if folder.is_absolute() else Path(settings.AEGIS_LABS_DIR) / folder


def lab_topology(lab: Lab) -> Topology:
    return load_lab(lab_dir(lab))


def lab_sync(*, labs_dir: Path | None = None) -> list[Lab]:
    """Create or refresh a `Lab` row for every folder under AEGIS_LABS_DIR holding a `.clab.yml`.

    A lab that does not load is skipped with a warning naming the file and field to fix.
    Admin-only (management command); no permission check here.
    """
    root = Path(labs_dir or settings.AEGIS_LABS_DIR)
    synced: list[Lab] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if len(list(folder.glob("*.clab.yml"))) != 1:
            continue
        try:
            topology = load_lab(folder)
        except TopologyError as exc:
            log.warning("lab %s skipped: %s", folder, exc)
            continue
        lab, _ = Lab.objects.update_or_create(
            name=topology.name[:64] or folder.name, defaults=_lab_fields(folder, topology)
        )
        synced.append(lab)
    return synced


def lab_for_folder(folder: Path) -> Lab:
    """The `Lab` row of a lab folder (or its `.clab.yml`), created or refreshed; raises TopologyError.

    The CLI names any folder, e.g. one of the FRR labs of a site's own repository: the run
    needs a row like a web run's. A row with that folder is reused; a new folder whose lab
    name is taken by another folder gets the name with a short digest of its path.
    No permission check (the CLI runs with the server's own rights).
    """
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    topology = load_lab(folder)
    fields = _lab_fields(folder, topology)
    lab = Lab.objects.filter(folder=fields["folder"]).first()
    if lab is None:
        name = slugify(topology.name)[:64] or slugify(folder.name)[:64] or "lab"
        if Lab.objects.filter(name=name).exists():
            name = f"{name[:55]}-{hashlib.sha256(fields['folder'].encode()).hexdigest()[:8]}"
        return Lab.objects.create(name=name, **fields)
    for key, value in fields.items():
        setattr(lab, key, value)
    lab.save(update_fields=list(fields))
    return lab


def _lab_fields(folder: Path, topology: Topology) -> dict[str, Any]:
    (clab,) = sorted(folder.glob("*.clab.yml"))
    try:
        rel = str(folder.resolve().relative_to(Path(settings.AEGIS_LABS_DIR).resolve()))
    except ValueError:
        rel = str(folder.resolve())
    return {
        "folder": rel,
        "digest": sha256_digest(clab.read_bytes()),
        "routers": topology.routers(),
        "criticality": {
            n: node.labels.get("aegis.criticality", "") for n, node in topology.nodes.items() if node.role == "frr"
        },
        "invariants": _lab_invariants(folder),
    }


def _lab_invariants(folder: Path) -> list[Any]:
    """The lab's declared must-hold checks (aegis.yml), shown on the start page; [] if none."""
    path = folder / "aegis.yml"
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return []
    found = data.get("invariants") if isinstance(data, dict) else None
    return found if isinstance(found, list) else []
