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
    assert "3 kept, 0 broken" in done.stdout


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


def _graph():
    import grimp

    sys.path.insert(0, str(REPO))
    try:
        return grimp.build_graph(*PACKAGES, cache_dir=None)
    finally:
        sys.path.remove(str(REPO))


def test_no_module_imports_itself_round_a_circle():
    # given the production modules, when their imports are followed, then none leads back to where it began
    graph = _graph()
    modules = {m for m in graph.modules if ".tests" not in m}
    edges = {m: [i for i in graph.find_modules_directly_imported_by(m) if i in modules] for m in modules}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    circles: list[str] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in edges[module]:
            if state.get(nxt) == 1:
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[module] = 2

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
    assert circles == [], "import circles:\n" + "\n".join(circles)


def layer_edges() -> list[str]:
    """The package-to-package imports of the production code, as the diagram in docs/architecture.md
    draws them (`a --> b`: some module of `a` imports one of `b`; tests left out). Which packages
    depend on which changes rarely, and only deliberately; how many modules do changes every day."""
    graph = _graph()
    pairs: dict[tuple[str, str], set[str]] = {}
    for module in graph.modules:
        if ".tests" in module:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = module.split(".")[0], imported.split(".")[0]
            if a != b and b in PACKAGES and ".tests" not in imported:
                pairs.setdefault((a, b), set()).add(module)
    order = sorted(pairs, key=lambda ab: (PACKAGES.index(ab[0]), PACKAGES.index(ab[1])))
    return [f"    {a} --> {b}" for a, b in order]


def test_the_architecture_diagram_is_the_code():
    # given docs/architecture.md, when the import graph is drawn again from the code, then they agree
    doc = (REPO / "docs" / "architecture.md").read_text()
    drawn = doc.split("```mermaid\ngraph TD\n", 1)[1].split("```", 1)[0].strip("\n").splitlines()
    assert drawn == layer_edges(), (
        "docs/architecture.md is out of date; replace its mermaid edges with the output of "
        "`.venv/bin/python aegis_base/tests/test_import_contracts.py`"
    )


if __name__ == "__main__":
    print("\n".join(layer_edges()))
