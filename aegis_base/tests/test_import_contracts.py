"""The one-way order of the apps holds: `lint-imports` (.importlinter) keeps it, and no import
inside a function crosses from one top-level package into another (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("aegis_site", "promote", "preflight", "evidence", "compliance", "aegis_base", "twin", "perimeter")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(*config: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", *config],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_are_kept():
    # given the repository, when lint-imports checks .importlinter, then every contract is kept
    done = lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_a_broken_contract_fails(tmp_path):
    # given a contract the code does not keep (preflight does seal through evidence), then lint-imports fails
    config = (REPO / ".importlinter").read_text() + (
        "\n[importlinter:contract:probe]\nname = probe\ntype = forbidden\n"
        "source_modules =\n    preflight.services\nforbidden_modules =\n    evidence\n"
    )
    path = tmp_path / "importlinter.ini"
    path.write_text(config)
    done = lint_imports(str(path))
    assert done.returncode != 0
    assert "preflight.services is not allowed to import evidence" in done.stdout


def _function_level_crossings(path: Path) -> list[str]:
    own = path.relative_to(REPO).parts[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in PACKAGES and top != own:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    return found


def test_no_import_inside_a_function_crosses_packages():
    # given every production module, when its functions are read, then none imports another package
    crossings = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "tests" in path.relative_to(REPO).parts:
                continue
            crossings += _function_level_crossings(path)
    assert crossings == [], "cross-package imports belong at module top:\n" + "\n".join(crossings)
