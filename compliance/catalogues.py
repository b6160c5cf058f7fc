"""Framework catalogues: the controls change-management evidence speaks to, read from data files.

Each framework is one YAML file in `compliance/data/frameworks/<id>.yaml`; the file is
validated when it is loaded, so a typo in a data file is an error that names the file and
the entry, never a wrong crosswalk. Django-free: plain data in, plain data out.

Every control carries `marking`: ``V`` when its text was checked against the primary source
(or a verbatim reproduction), ``S`` when it comes from a secondary source only and must be
checked before it is quoted to an examiner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"
FRAMEWORKS_DIR = DATA_DIR / "frameworks"

MARKINGS = {
    "V": "verified against the primary source or a verbatim reproduction",
    "S": "from a secondary source only: check the official text before quoting it",
}

# OSCAL token (ASCII subset of the schema's `^(\p{L}|_)(\p{L}|\p{N}|[.\-_])*$`).
_OSCAL_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
_FRAMEWORK_KEYS = {"id", "title", "version", "source", "oscal_source", "controls"}
_CONTROL_KEYS = {"id", "oscal_id", "title", "meaning", "marking", "note"}


class CatalogueError(ValueError):
    """A catalogue or crosswalk data file is malformed. The message names the file and entry."""


class UnknownFramework(ValueError):
    """A framework id that no catalogue defines. The message lists the known ids."""


@dataclass(frozen=True)
class Control:
    framework: str
    id: str
    title: str
    meaning: str
    marking: str  # "V" | "S"
    oscal_id: str
    note: str = ""
    source: str = ""  # the framework's source line

    @property
    def source_note(self) -> str:
        """e.g. "[V] NIST SP 800-53 Rev. 5, ... (text verified against the primary source or ...)"."""
        text = f"[{self.marking}] {self.source or 'source not recorded'} (text {MARKINGS[self.marking]})"
        return text + (f"; {self.note}" if self.note else "")


@dataclass(frozen=True)
class Framework:
    id: str
    title: str
    version: str
    source: str
    path: str
    controls: dict[str, Control] = field(default_factory=dict)  # in file order
    oscal_source: str = ""

    def summary(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "version": self.version, "source": self.source}


def _oscal_id_default(framework_id: str, control_id: str) -> str:
    # No official OSCAL catalog exists for most of these frameworks, so ids are namespaced
    # by framework and folded into an OSCAL token: "6.5.1" -> "pci-dss-4.0.1_6.5.1".
    slug = re.sub(r"[^a-z0-9.]+", ".", control_id.lower()).strip(".")
    return f"{framework_id}_{slug}"


def _need_str(value: Any, where: str, name: str, *, one_line: bool = True) -> str:
    if not isinstance(value, str) or not value.strip():
        hint = ' (quote numeric ids such as "6.5.1" in YAML)' if isinstance(value, (int, float)) else ""
        raise CatalogueError(f"{where}: `{name}` must be a non-empty string, got {value!r}{hint}")
    if one_line and "\n" in value.strip():
        raise CatalogueError(f"{where}: `{name}` must be one line")
    return value.strip()


def yaml_file_load(path: Path) -> Any:
    """A compliance data file as YAML (safe loader); CatalogueError naming the file when it is not."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path}: not valid YAML: {exc}") from exc


def catalogue_load(path: str | Path) -> Framework:
    """Read and validate one framework file; raise CatalogueError naming the file and entry."""
    path = Path(path)
    data = yaml_file_load(path)
    if not isinstance(data, dict):
        raise CatalogueError(f"{path}: must be a mapping with id, title, version, source, controls")
    unknown = set(data) - _FRAMEWORK_KEYS
    if unknown:
        raise CatalogueError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_FRAMEWORK_KEYS)}")
    fid = _need_str(data.get("id"), str(path), "id")
    if fid != path.stem:
        raise CatalogueError(f"{path}: id {fid!r} must equal the file name {path.stem!r}")
    fields = {k: _need_str(data.get(k), str(path), k) for k in ("title", "version", "source")}
    controls_raw = data.get("controls")
    if not isinstance(controls_raw, list) or not controls_raw:
        raise CatalogueError(f"{path}: `controls` must be a non-empty list")
    controls: dict[str, Control] = {}
    oscal_ids: set[str] = set()
    for i, entry in enumerate(controls_raw):
        where = f"{path}: controls[{i}]"
        if not isinstance(entry, dict):
            raise CatalogueError(f"{where}: must be a mapping, got {entry!r}")
        cid = _need_str(entry.get("id"), where, "id")
        where = f"{path}: controls[{i}] ({cid})"
        unknown = set(entry) - _CONTROL_KEYS
        if unknown:
            raise CatalogueError(
                f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_CONTROL_KEYS)}"
            )
        if cid in controls:
            raise CatalogueError(f"{where}: duplicate control id {cid!r}")
        marking = entry.get("marking")
        if marking not in MARKINGS:
            raise CatalogueError(f"{where}: `marking` must be one of {sorted(MARKINGS)}, got {marking!r}")
        oscal_id = entry.get("oscal_id") or _oscal_id_default(fid, cid)
        if not isinstance(oscal_id, str) or not _OSCAL_TOKEN.match(oscal_id):
            raise CatalogueError(
                f"{where}: `oscal_id` {oscal_id!r} is not an OSCAL token ([A-Za-z_][A-Za-z0-9._-]*)"
            )
        if oscal_id in oscal_ids:
            raise CatalogueError(f"{where}: duplicate oscal_id {oscal_id!r}")
        oscal_ids.add(oscal_id)
        note = entry.get("note", "")
        controls[cid] = Control(
            framework=fid,
            id=cid,
            title=_need_str(entry.get("title"), where, "title"),
            meaning=_need_str(entry.get("meaning"), where, "meaning"),
            marking=marking,
            oscal_id=oscal_id,
            note=_need_str(note, where, "note") if note else "",
            source=fields["source"],
        )
    return Framework(
        id=fid,
        path=str(path),
        controls=controls,
        oscal_source=str(data.get("oscal_source") or ""),
        **fields,
    )


@lru_cache(maxsize=4)
def catalogues_load(frameworks_dir: str | Path = FRAMEWORKS_DIR) -> dict[str, Framework]:
    """Every framework in `frameworks_dir`, by id, sorted by id. Cached: the files are data, not state."""
    files = sorted(Path(frameworks_dir).glob("*.yaml"))
    if not files:
        raise CatalogueError(f"{frameworks_dir}: no framework files (*.yaml)")
    return {fw.id: fw for fw in (catalogue_load(p) for p in files)}


def framework_list() -> list[dict[str, str]]:
    """The frameworks AEGIS can map evidence to: [{id, title, version, source}]."""
    return [fw.summary() for fw in catalogues_load().values()]


def frameworks_check(frameworks: list[str] | tuple[str, ...]) -> list[str]:
    """Return the ids in the order given, de-duplicated; raise UnknownFramework for any unknown id."""
    known = catalogues_load()
    unknown = [f for f in frameworks if f not in known]
    if unknown:
        raise UnknownFramework(
            f"unknown framework(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
        )
    return list(dict.fromkeys(frameworks))
