"""The bundled labs' example changes and the expectations written in their header comments:

    # expect-verdict: blocked
    # expect-reasons: SESSION_LOST            (each code must be among the result's reasons)
    # expect-spawned: false                   (blocked before a twin was spawned)
    # expect-exit: 2                          (an input error: refused before anything ran)
    # expect-mentions: link_down leaf3:eth2   (this text appears in a reason's message)
    # expect-witness: agree                   (every real packet of the FIB diff agrees; twin only)
    # expect-failures: auto                   (failure scenarios to run; the tests default to none)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LABS = Path(__file__).resolve().parents[3] / "labs"


@dataclass
class Example:
    lab: Path
    path: Path
    verdict: str | None
    reasons: list[str]
    spawned: bool
    exit_code: int | None
    mentions: str | None = None
    witness: str | None = None
    failures: str = "none"

    @property
    def id(self) -> str:
        return f"{self.lab.name}/{self.path.stem}"


def examples() -> list[Example]:
    out = []
    for path in sorted(LABS.glob("*/changes/*.yml")):
        head = {}
        for line in path.read_text().splitlines():
            if line.startswith("# expect-"):
                key, _, value = line[len("# expect-"):].partition(":")
                head[key.strip()] = value.strip()
        out.append(Example(lab=path.parent.parent, path=path, verdict=head.get("verdict"),
                           reasons=head.get("reasons", "").split(), spawned=head.get("spawned", "true") != "false",
                           exit_code=int(head["exit"]) if "exit" in head else None,
                           mentions=head.get("mentions"), witness=head.get("witness"),
                           failures=head.get("failures", "none")))
    return out
