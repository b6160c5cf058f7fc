"""The catalogue and crosswalk data files: loaded, validated, and a typo is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from compliance.catalogues import (
    FRAMEWORKS_DIR,
    CatalogueError,
    UnknownFramework,
    catalogue_load,
    catalogues_load,
    framework_list,
    frameworks_check,
)
from compliance.crosswalk import CROSSWALK_FILE, RULES, crosswalk_load

CONTRACT_IDS = [
    "nist-800-53r5",
    "pci-dss-4.0.1",
    "nerc-cip-010-4",
    "iso-27001-2022",
    "soc2-cc8.1",
    "dora",
    "nis2",
    "hipaa",
    "cis-v8.1",
    "ffiec",
]

GOOD = """\
id: {id}
title: Test framework
version: "1"
source: "test"
controls:
  - id: "1.1"
    title: First
    meaning: The first control.
    marking: V
"""


def test_every_framework_of_the_contract_is_catalogued():
    ids = [f["id"] for f in framework_list()]
    assert set(CONTRACT_IDS) <= set(ids)  # a site may add frameworks (docs/compliance.md)
    for entry in framework_list():
        assert entry["title"] and entry["version"]


def test_every_control_is_mapped_by_some_artifact_and_every_mapping_is_judgement():
    mapped = {(m.framework, m.control_id) for a in crosswalk_load() for m in a.maps}
    for fw in catalogues_load().values():
        unmapped = [cid for cid in fw.controls if (fw.id, cid) not in mapped]
        assert unmapped == [], f"{fw.id}: controls no artifact speaks to: {unmapped}"
    assert {m.basis for a in crosswalk_load() for m in a.maps} == {"judgement"}


def test_secondary_sources_are_marked():
    ffiec = catalogues_load()["ffiec"]
    assert {c.marking for c in ffiec.controls.values()} == {"S"}  # booklet level only, not verified
    assert catalogues_load()["nist-800-53r5"].controls["CM-3(2)"].marking == "V"
    assert "secondary" in ffiec.controls["AIO"].source_note


def test_oscal_ids_follow_the_nist_catalog_and_namespace_the_rest():
    nist = catalogues_load()["nist-800-53r5"].controls
    assert nist["CM-3(2)"].oscal_id == "cm-3.2"
    assert catalogues_load()["pci-dss-4.0.1"].controls["6.5.1"].oscal_id == "pci-dss-4.0.1_6.5.1"


def test_frameworks_check_deduplicates_and_refuses_unknown():
    assert frameworks_check(["dora", "nis2", "dora"]) == ["dora", "nis2"]
    with pytest.raises(UnknownFramework, match="'sox'"):
        frameworks_check(["dora", "sox"])


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_good_file_loads(tmp_path):
    fw = catalogue_load(_write(tmp_path, "test-fw", GOOD.format(id="test-fw")))
    assert list(fw.controls) == ["1.1"]
    assert fw.controls["1.1"].oscal_id == "test-fw_1.1"


@pytest.mark.parametrize(
    "edit,words",
    [
        (lambda t: t.replace("marking: V", "marking: X"), "controls[0] (1.1): `marking` must be one of"),
        (lambda t: t.replace('id: "1.1"', "id: 1.1"), "quote numeric ids"),
        (
            lambda t: t.replace("meaning: The first control.", "meanig: The first control."),
            "unknown key(s) ['meanig']",
        ),
        (
            lambda t: t.replace("    title: First\n", ""),
            "controls[0] (1.1): `title` must be a non-empty string",
        ),
        (lambda t: t.replace("id: test-fw", "id: other"), "must equal the file name"),
        (
            lambda t: t + '  - id: "1.1"\n    title: Again\n    meaning: Dup.\n    marking: S\n',
            "duplicate control id",
        ),
        (lambda t: t.replace("marking: V", "marking: V\n    oscal_id: '6 bad'"), "is not an OSCAL token"),
        (lambda t: t.replace("controls:", "controls: [\n"), "not valid YAML"),
        (lambda t: t.replace("version:", "versoin:"), "unknown key(s) ['versoin']"),
    ],
)
def test_typo_in_a_framework_file_names_file_and_entry(tmp_path, edit, words):
    path = _write(tmp_path, "test-fw", edit(GOOD.format(id="test-fw")))
    with pytest.raises(CatalogueError) as err:
        catalogue_load(path)
    assert str(path) in str(err.value)
    assert words in str(err.value)


@pytest.mark.parametrize(
    "old,new,words",
    [
        (
            '{control: CM-3(2), aspect: "test before implementation"}',
            "{control: CM-3(9)}",
            "artifacts[5] (twin_test): nist-800-53r5[0]: control 'CM-3(9)' is not in",
        ),
        ("  - id: egress_record\n", "  - id: egress_recrod\n", "no state rule for artifact 'egress_recrod'"),
        (
            "      nerc-cip-010-4:\n        - {control: R1.1}",
            "      nerc-cip-01-4:\n        - {control: R1.1}",
            "unknown framework 'nerc-cip-01-4'",
        ),
        ("{control: R1.1}", "{control: R1.1, basis: official-ish}", "`basis` must be one of"),
        ('{control: "8.2"}', "{control: 8.2}", "quote ids"),
    ],
)
def test_typo_in_the_crosswalk_names_file_and_entry(tmp_path, old, new, words):
    text = CROSSWALK_FILE.read_text()
    assert old in text, "test fixture out of date with crosswalk.yaml"
    path = tmp_path / "crosswalk.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(CatalogueError) as err:
        crosswalk_load(path)
    assert str(path) in str(err.value)
    assert words in str(err.value)


def test_shipped_files_all_load():
    assert len(list(FRAMEWORKS_DIR.glob("*.yaml"))) == len(catalogues_load())
    assert {a.id for a in crosswalk_load()} == set(RULES)
