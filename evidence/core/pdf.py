"""The examiner PDF: a readable view of one sealed bundle, with the bundle attached inside.

reportlab draws the pages with embedded DejaVu TrueType fonts (Debian `fonts-dejavu-core`);
pikepdf then attaches `bundle.json` as a PDF/A-3 associated file (AFRelationship /Source),
adds the standalone verifier and the site public key, and writes the PDF/A-3B markers
(XMP `pdfaid`, an sRGB OutputIntent). The PDF carries the seal digest on every page, so it
cannot itself be inside the signed bundle: it is a rendering, and the examiner ties the two
by checking that the digest printed on the pages equals the digest of the attached bundle
that `verify_standalone.py` verifies.
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu")]
FONTS = {"Sans": "DejaVuSans.ttf", "Sans-Bold": "DejaVuSans-Bold.ttf", "Mono": "DejaVuSansMono.ttf"}
VERDICT_COLOURS = {"blocked": "#b3261e", "needs_approval": "#9a6700", "ship_ready": "#1a7f37"}
VERDICT_TEXT = {"blocked": "BLOCKED", "needs_approval": "NEEDS APPROVAL", "ship_ready": "SHIP READY"}


class PdfError(RuntimeError):
    """The report could not be drawn (a missing font, a broken input); says what to install or fix."""


# ---- fonts and colours --------------------------------------------------------------------

_fonts_registered = False


def _register_fonts() -> None:
    global _fonts_registered
    if _fonts_registered:
        return
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for name, file in FONTS.items():
        path = next((d / file for d in FONT_DIRS if (d / file).is_file()), None)
        if path is None:
            raise PdfError(f"font {file} not found; install the Debian package fonts-dejavu-core")
        pdfmetrics.registerFont(TTFont(f"AEGIS-{name}", str(path)))
    addMapping("AEGIS-Sans", 0, 0, "AEGIS-Sans")
    addMapping("AEGIS-Sans", 1, 0, "AEGIS-Sans-Bold")
    addMapping("AEGIS-Sans", 0, 1, "AEGIS-Sans")
    addMapping("AEGIS-Sans", 1, 1, "AEGIS-Sans-Bold")
    _fonts_registered = True


def srgb_icc_profile() -> bytes:
    """An sRGB ICC profile for the PDF/A OutputIntent: the system's if present, else LittleCMS's."""
    for candidate in (
        "/usr/share/color/icc/sRGB.icc",
        "/usr/share/color/icc/colord/sRGB.icc",
        "/usr/share/color/icc/ghostscript/srgb.icc",
    ):
        if Path(candidate).is_file():
            return Path(candidate).read_bytes()
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# ---- small text helpers -----------------------------------------------------------------


def _t(value: Any) -> str:
    """Text safe for a reportlab Paragraph."""
    return escape("" if value is None else str(value))


def _item(value: Any) -> str:
    """One diff entry as a line: a route as `prefix protocol via nexthops`, other dicts as pairs."""
    if isinstance(value, dict):
        if "message" in value:
            return str(value["message"])
        if "before" in value and "after" in value:
            ident = next(
                (str(value[k]) for k in ("prefix", "peer", "neighbor", "key", "address") if k in value), ""
            )
            return f"{ident}: {_brief(value['before'])} -> {_brief(value['after'])}".lstrip(": ")
        if "prefix" in value and "protocol" in value:
            via = ", ".join(map(str, value.get("nexthops") or [])) or "-"
            return f"{value['prefix']} {value['protocol']} [{value.get('distance')}/{value.get('metric')}] via {via}"
        return ", ".join(f"{k}={_item(v)}" for k, v in value.items() if v not in (None, [], {}, ""))
    if isinstance(value, list | tuple):
        return " ".join(_item(v) for v in value)
    return "" if value is None else str(value)


def _fingerprint(pem: str) -> str:
    """SHA-256 of the raw 32-byte public key (the key id is its first 32 hex digits)."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
        return hashlib.sha256(key.public_bytes_raw()).hexdigest()  # type: ignore[union-attr]
    except (ValueError, TypeError, AttributeError):
        return "unreadable key"


def _brief(value: Any) -> str:
    """One side of a before/after pair: a route without its prefix, or the plain value."""
    if isinstance(value, dict) and "protocol" in value:
        via = ", ".join(map(str, value.get("nexthops") or [])) or "-"
        return f"{value['protocol']} [{value.get('distance')}/{value.get('metric')}] via {via}"
    return _item(value)


def _page_size(name: str) -> tuple[float, float]:
    from reportlab.lib.pagesizes import A4, LETTER

    sizes = {"a4": A4, "letter": LETTER}
    if name.lower() not in sizes:
        raise PdfError(f"AEGIS_PDF_PAGE_SIZE {name!r}: use A4 or Letter")
    return sizes[name.lower()]


# ---- the report ---------------------------------------------------------------------------


def _decided(approval: dict) -> str:
    """A decision in the past tense for the reader: approve -> approved (older records say it so already)."""
    decision = str(approval.get("decision") or "approved")
    return {"approve": "approved", "reject": "rejected"}.get(decision, decision)


class _Report:
    def __init__(self, bundle: dict, statement: dict, approvals: list[dict] | None, page_size: str):
        from reportlab.lib import colors
        from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet

        _register_fonts()
        self.colors = colors
        self.bundle = bundle
        self.statement = statement
        self.p = statement.get("predicate") or {}
        self.result = self.p.get("result") or {}
        self.approvals = approvals
        self.pagesize = _page_size(page_size)
        # The frame's usable width: page minus 18 mm margins minus the frame's 6 pt padding.
        self.width = self.pagesize[0] - 36 * 72 / 25.4 - 12
        self.code_chars = int(self.width / (7.5 * 0.602)) - 3
        base = getSampleStyleSheet()
        self.s = {
            "body": ParagraphStyle(
                "b", parent=base["BodyText"], fontName="AEGIS-Sans", fontSize=9, leading=12
            ),
            "small": ParagraphStyle(
                "s", parent=base["BodyText"], fontName="AEGIS-Sans", fontSize=7.5, leading=9.5
            ),
            "cell": ParagraphStyle(
                "c", parent=base["BodyText"], fontName="AEGIS-Sans", fontSize=8, leading=10
            ),
            "mono": ParagraphStyle("m", fontName="AEGIS-Mono", fontSize=7.5, leading=9.5),
            "code": ParagraphStyle(
                "code",
                fontName="AEGIS-Mono",
                fontSize=7.5,
                leading=9.5,
                leftIndent=6,
                backColor=colors.HexColor("#f3f5f7"),
                borderPadding=3,
                spaceBefore=2,
                spaceAfter=4,
            ),
            "h1": ParagraphStyle(
                "h1", parent=base["Heading1"], fontName="AEGIS-Sans-Bold", fontSize=16, leading=20
            ),
            "h2": ParagraphStyle(
                "h2",
                parent=base["Heading2"],
                keepWithNext=1,  # a heading never ends a page alone
                fontName="AEGIS-Sans-Bold",
                fontSize=12,
                leading=15,
                spaceBefore=10,
            ),
            "h3": ParagraphStyle(
                "h3",
                parent=base["Heading3"],
                fontName="AEGIS-Sans-Bold",
                fontSize=9.5,
                leading=12,
                keepWithNext=1,
            ),
            "verdict": ParagraphStyle(
                "v", fontName="AEGIS-Sans-Bold", fontSize=22, leading=26, textColor=colors.white, alignment=1
            ),
        }

    # building blocks

    def para(self, text: str, style: str = "body"):
        from reportlab.platypus import Paragraph

        return Paragraph(text, self.s[style])

    def mono(self, text: str):
        """A code block; long lines wrap (marked with a trailing backslash, as configs do)."""
        from reportlab.platypus import Preformatted

        text = text.rstrip("\n") or " "
        return Preformatted(text, self.s["code"], maxLineLength=self.code_chars, newLineChars="\\ ")

    def table(
        self, header: list[str], rows: list[list[Any]], widths: list[float] | None = None, mono_cols=()
    ):
        from reportlab.platypus import Table, TableStyle

        c = self.colors
        data = [[self.para(f"<b>{_t(h)}</b>", "cell") for h in header]]
        for row in rows:
            data.append(
                [
                    cell
                    if not isinstance(cell, str | int | float | type(None))
                    else self.para(_t(cell), "mono" if i in mono_cols else "cell")
                    for i, cell in enumerate(row)
                ]
            )
        col_widths = [w * self.width for w in widths] if widths else None
        t = Table(data, colWidths=col_widths, repeatRows=1, hAlign="LEFT")
        t.setStyle(
            TableStyle(
                [
                    ("BACKGROUND", (0, 0), (-1, 0), c.HexColor("#e8ecf0")),
                    ("GRID", (0, 0), (-1, -1), 0.4, c.HexColor("#9aa4ad")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("FONTNAME", (0, 0), (-1, -1), "AEGIS-Sans"),  # Table's default is unembedded Helvetica
                    ("LEFTPADDING", (0, 0), (-1, -1), 3),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 3),
                    ("TOPPADDING", (0, 0), (-1, -1), 2),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ]
            )
        )
        return t

    def kv(self, pairs: list[tuple[str, Any]], mono_keys=()):
        rows = []
        for k, v in pairs:
            cell = v if not isinstance(v, str | int | float | type(None)) else None
            rows.append(
                [
                    self.para(f"<b>{_t(k)}</b>", "cell"),
                    cell or self.para(_t(v), "mono" if k in mono_keys else "cell"),
                ]
            )
        from reportlab.platypus import Table, TableStyle

        t = Table(rows, colWidths=[0.24 * self.width, 0.76 * self.width], hAlign="LEFT")
        t.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.4, self.colors.HexColor("#9aa4ad")),
                    ("BACKGROUND", (0, 0), (0, -1), self.colors.HexColor("#f3f5f7")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("FONTNAME", (0, 0), (-1, -1), "AEGIS-Sans"),  # Table's default is unembedded Helvetica
                    ("TOPPADDING", (0, 0), (-1, -1), 2),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ]
            )
        )
        return t

    def none(self, what: str):
        return self.para(f"<i>{_t(what)}</i>")

    # facts

    @property
    def digest(self) -> str:
        return self.bundle.get("digest", "")

    def ledger_position(self) -> str:
        led = self.bundle.get("ledger") or {}
        note = (led.get("tlog_proof") or "").partition("\n\n")[2]
        lines = note.split("\n")
        size = lines[1] if len(lines) > 2 else "?"
        return f"leaf {led.get('index')} of {size} in {led.get('origin')}"

    def approvals_text(self) -> str:
        if not self.approvals:
            if self.p.get("verdict") == "blocked":
                return "none (a blocked run is not approvable)"
            return "pending"
        return "; ".join(
            f"{_decided(a)} by {a.get('approver', '?')} ({a.get('role', 'approver')}) "
            f"at {a.get('decided_at') or a.get('at') or '?'}"
            for a in self.approvals
        )

    # sections

    def cover(self) -> list:
        from reportlab.platypus import Spacer, Table, TableStyle

        r, p = self.result, self.p
        verdict = p.get("verdict", "?")
        box = Table([[self.para(VERDICT_TEXT.get(verdict, verdict.upper()), "verdict")]], colWidths=[None])
        box.setStyle(
            TableStyle(
                [
                    (
                        "BACKGROUND",
                        (0, 0),
                        (-1, -1),
                        self.colors.HexColor(VERDICT_COLOURS.get(verdict, "#444444")),
                    ),
                    ("TOPPADDING", (0, 0), (-1, -1), 10),
                    ("FONTNAME", (0, 0), (-1, -1), "AEGIS-Sans"),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 12),
                ]
            )
        )
        risk = r.get("risk") or {}
        twin = r.get("twin") or {}
        seal = p.get("seal") or {}
        tier = twin.get("tier") or "?"
        tier_text = tier + (" (not promotable: no real routing daemons ran)" if tier == "simulated" else "")
        story = [
            self.para("AEGIS preflight evidence report", "h1"),
            self.para(f"Change: <b>{_t((r.get('change') or {}).get('title'))}</b>"),
            Spacer(1, 6),
            box,
            Spacer(1, 8),
            self.kv(
                [
                    ("Verdict", VERDICT_TEXT.get(verdict, verdict)),
                    (
                        "Risk",
                        f"{risk.get('tier', '?')} (score {risk.get('score', '?')}, rubric {risk.get('rubric_version', '?')})",
                    ),
                    ("Change title", (r.get("change") or {}).get("title")),
                    ("Run", r.get("run_id")),
                    (
                        "Lab",
                        f"{(r.get('lab') or {}).get('name')} ({(r.get('lab') or {}).get('digest') or 'no lab digest'})",
                    ),
                    (
                        "Twin",
                        f"{twin.get('backend', '?')}, tier {tier_text}, FRR {twin.get('frr_version') or 'n/a'}",
                    ),
                    ("Operator", seal.get("operator") or "not recorded"),
                    ("Approvals", self.approvals_text()),
                    ("Seal digest", self.digest),
                    ("Ledger position", self.ledger_position()),
                    ("Signing key id", seal.get("keyid")),
                    ("Sealed at", seal.get("sealed_at")),
                    ("Frameworks", ", ".join(p.get("frameworks") or []) or "none selected"),
                ],
                mono_keys=("Seal digest", "Signing key id", "Run"),
            ),
        ]
        reasons = r.get("reasons") or []
        story.append(self.para("Why this verdict", "h2"))
        if reasons:
            story.append(
                self.table(
                    ["code", "reason"], [[x.get("code"), x.get("message")] for x in reasons], [0.25, 0.75]
                )
            )
        else:
            story.append(self.none("No blocking reason: every check held."))
        return story

    def change_section(self) -> list:
        ch = self.result.get("change") or {}
        story = [self.para("1. Change and rationale", "h2")]
        story.append(
            self.kv(
                [
                    ("Title", ch.get("title")),
                    ("Description", ch.get("description") or "none given"),
                    ("Source", ch.get("source")),
                    ("Devices", ", ".join(sorted((ch.get("devices") or {}).keys())) or "none"),
                ]
            )
        )
        for device, text in sorted((ch.get("devices") or {}).items()):
            story += [self.para(f"Configuration for {_t(device)}", "h3"), self.mono(text)]
        expect = ch.get("expect") or {}
        if any(expect.values()):
            story += [self.para("Declared expectations", "h3"), self.mono(_item(expect))]
        files = ((self.p.get("inputs") or {}).get("lab") or {}).get("files") or {}
        if files:
            story.append(
                self.para("Baseline: the lab files as sealed (full text in the attached bundle)", "h3")
            )
            rows = [
                [name, entry.get("bytes", ""), entry.get("sha256") or entry.get("skipped", "")]
                for name, entry in sorted(files.items())
            ]
            story.append(self.table(["file", "bytes", "sha256"], rows, [0.3, 0.1, 0.6], mono_cols=(2,)))
        llm = self.result.get("llm")
        if llm:
            story.append(self.para("Proposed by a language model", "h3"))
            story.append(
                self.kv(
                    [
                        ("Endpoint", llm.get("endpoint")),
                        ("Model", llm.get("model")),
                        ("Weights sha256", llm.get("weights_sha256")),
                        ("Parameters", _item(llm.get("parameters") or {})),
                        ("Prompt", (llm.get("prompt") or "")[:1500]),
                        ("Raw output", (llm.get("raw") or "")[:1500]),
                    ],
                    mono_keys=("Weights sha256",),
                )
            )
        return story

    def static_section(self) -> list:
        findings = self.result.get("static_findings") or []
        story = [self.para("2. Static analysis", "h2")]
        if not findings:
            return story + [self.none("FRR's parser and the semantic checks found nothing.")]
        rows = [
            [
                f.get("device"),
                f.get("line_no"),
                f.get("severity"),
                f.get("code"),
                f"{f.get('line') or ''}\n{f.get('message') or ''}",
            ]
            for f in findings
        ]
        return story + [
            self.table(
                ["device", "line", "severity", "code", "line / message"], rows, [0.08, 0.06, 0.1, 0.22, 0.54]
            )
        ]

    def route_chart(self):
        from reportlab.graphics.charts.barcharts import VerticalBarChart
        from reportlab.graphics.charts.legends import Legend
        from reportlab.graphics.shapes import Drawing, String

        snaps = self.result.get("snapshots") or {}
        phases = [
            (k, label)
            for k, label in (
                ("baseline", "before"),
                ("after", "after change"),
                ("rollback", "after rollback"),
            )
            if snaps.get(k)
        ]
        nodes = sorted({n for k, _ in phases for n in ((snaps[k] or {}).get("nodes") or {})})
        if not phases or not nodes:
            return None
        data = [
            [len(((snaps[k].get("nodes") or {}).get(n) or {}).get("routes") or {}) for n in nodes]
            for k, _ in phases
        ]
        width = self.width
        d = Drawing(width, 190)
        d.initialFontName = "AEGIS-Sans"  # no unembedded standard-14 font anywhere (PDF/A)
        chart = VerticalBarChart()
        chart.x, chart.y, chart.width, chart.height = 40, 30, width - 170, 140
        chart.data = data
        chart.categoryAxis.categoryNames = nodes
        chart.categoryAxis.labels.fontName = "AEGIS-Sans"
        chart.valueAxis.labels.fontName = "AEGIS-Sans"
        chart.valueAxis.valueMin = 0
        top = max(max(row) for row in data) or 1
        chart.valueAxis.valueMax = top + 1
        chart.valueAxis.valueStep = max(1, (top + 1) // 5)
        palette = [
            self.colors.HexColor("#8da0b3"),
            self.colors.HexColor("#2f6db5"),
            self.colors.HexColor("#5aa469"),
        ]
        for i in range(len(phases)):
            chart.bars[i].fillColor = palette[i]
        chart.barLabels.fontName = "AEGIS-Sans"
        chart.barLabels.fontSize = 6
        chart.barLabelFormat = "%d"
        chart.barLabels.nudge = 5
        d.add(chart)
        legend = Legend()
        legend.x, legend.y = width - 120, 150
        legend.fontName = "AEGIS-Sans"
        legend.fontSize = 8
        legend.colorNamePairs = [(palette[i], label) for i, (_, label) in enumerate(phases)]
        d.add(legend)
        d.add(String(40, 8, "selected routes per node (RIB, v4+v6)", fontName="AEGIS-Sans", fontSize=7))
        return d

    def twin_section(self) -> list:
        twin = self.result.get("twin") or {}
        story = [self.para("3. Twin results", "h2")]
        story.append(
            self.kv(
                [
                    ("Backend / tier", f"{twin.get('backend')} / {twin.get('tier')}"),
                    ("FRR version", twin.get("frr_version") or "n/a"),
                    ("Nodes / links", f"{twin.get('nodes')} / {twin.get('links')}"),
                    (
                        "Convergence (s)",
                        f"baseline {twin.get('baseline_convergence_s')}, after change {twin.get('change_convergence_s')}, "
                        f"after rollback {twin.get('rollback_convergence_s')}",
                    ),
                    ("Lab config lines FRR refused", len(twin.get("load_errors") or [])),
                    ("Change lines FRR refused", len((self.result.get("apply") or {}).get("rejected") or [])),
                ]
            )
        )
        rejected = (self.result.get("apply") or {}).get("rejected") or []
        if rejected:
            story.append(self.para("Change lines FRR refused", "h3"))
            story.append(
                self.table(
                    ["node", "line", "FRR says"],
                    [[x.get("node"), x.get("line"), x.get("message")] for x in rejected],
                    [0.12, 0.4, 0.48],
                )
            )
        story += self.ledger_part()
        story += self.intent_part()
        chart = self.route_chart()
        if chart is not None:
            story += [self.para("Routes per node before and after", "h3"), chart]
        story.append(self.para("Differences between the baseline and the changed network", "h3"))
        diff = self.result.get("diff") or {}
        rows = []
        for node, d in sorted((diff.get("nodes") or {}).items()):
            for kind, entries in sorted((d or {}).items()):
                for entry in entries or []:
                    rows.append([node, kind.replace("_", " "), _item(entry)])
        for kind in ("reachability_lost", "reachability_gained"):
            for entry in diff.get(kind) or []:
                rows.append(["(network)", kind.replace("_", " "), _item(entry)])
        if rows:
            story.append(self.table(["node", "what", "entry"], rows[:400], [0.12, 0.2, 0.68], mono_cols=(2,)))
            if len(rows) > 400:
                story.append(self.none(f"{len(rows) - 400} more entries are in the attached bundle."))
        else:
            story.append(self.none("No route, session, adjacency or reachability changed."))
        for label, key in (
            ("Intended by the change", "intended"),
            ("Not declared by the change", "undeclared"),
        ):
            if diff.get(key):
                story += [self.para(label, "h3"), self.mono("\n".join(_item(x) for x in diff[key]))]
        return story + self.dataplane_part() + self.resilience_part()

    def dataplane_part(self) -> list:
        """The FIB diff: what changed for traffic, per (ingress, destination class), and its witnesses."""
        dp = self.result.get("dataplane")
        if not isinstance(dp, dict):
            return []
        story = [self.para("Forwarding tables before and after (every router's kernel FIB)", "h3")]
        if dp.get("skipped"):
            return story + [self.none(f"Not computed: {dp['skipped']}.")]
        story.append(self.para(
            f"{_t(dp.get('classes'))} destination classes x {_t(dp.get('ingresses'))} ingress routers = "
            f"{_t(dp.get('pairs_checked'))} pairs followed (IPv4 and IPv6, every ECMP branch); looping pairs "
            f"{_t((dp.get('pairs_looping') or {}).get('before'))} -> {_t((dp.get('pairs_looping') or {}).get('after'))}, "
            f"dropped {_t((dp.get('pairs_dropped') or {}).get('before'))} -> "
            f"{_t((dp.get('pairs_dropped') or {}).get('after'))}. Destination-based forwarding of the default VRF "
            "only: no ACLs, policy routing or NAT."))
        changed = dp.get("changed") or []
        if changed:
            rows = [[c.get("kind") + (" (declared)" if c.get("declared") else ""), c.get("text")] for c in changed[:200]]
            story.append(self.table(["kind", "statement"], rows, [0.16, 0.84]))
        else:
            story.append(self.none("No (ingress, destination) pair forwards differently."))
        witnessed = dp.get("witnessed") or []
        if witnessed:
            story.append(self.para("Witnessed by real packets (ping in the twin)", "h3"))
            rows = [[f"{w.get('from')} -> {w.get('address')}", w.get("expected") or "-", w.get("result"), w.get("why")]
                    for w in witnessed]
            story.append(self.table(["ping", "expected", "result", "why"], rows, [0.22, 0.13, 0.13, 0.52],
                                    mono_cols=(0,)))
        return story

    def resilience_part(self) -> list:
        """Failure scenarios: the same failures before and after the change, and what they lose."""
        res = self.result.get("resilience")
        if not isinstance(res, dict):
            return []
        story = [self.para("Failure scenarios (N-1) before and after the change", "h3")]
        scenarios = res.get("scenarios") or []
        if not scenarios:
            return story + [self.none("No failure scenario ran for this change.")]
        story.append(self.para("Survivors under each failure: loopback pairs reachable / BGP sessions up / routes."))
        rows = []
        for sc in scenarios:
            b, a = sc.get("before") or {}, sc.get("after") or {}
            lost = sc.get("lost") or []
            lost_text = ("; ".join(str(x) for x in lost[:12]) + (f"; and {len(lost) - 12} more" if len(lost) > 12 else "")
                         ) if lost else "-"
            if lost:
                lost_text = ("declared: " if sc.get("declared") else "REDUNDANCY LOST: ") + lost_text
            rows.append([sc.get("name"), f"{b.get('reachable_pairs')} / {b.get('sessions_up')} / {b.get('routes')}",
                         f"{a.get('reachable_pairs')} / {a.get('sessions_up')} / {a.get('routes')}", lost_text])
        story.append(self.table(["scenario", "before", "after", "lost"], rows, [0.2, 0.14, 0.14, 0.52], mono_cols=(0,)))
        return story

    def ledger_part(self) -> list:
        """The per-line ledger: every change line against FRR's own delta of the running config."""
        ledger = (self.result.get("apply") or {}).get("ledger") or {}
        if not ledger.get("available"):
            return []
        summary = ledger.get("summary") or {}
        story = [
            self.para("Per-line ledger (running config before vs after, frr-reload's delta)", "h3"),
            self.para(
                "applied {applied}, rejected {rejected}, not applied {not_applied}, reinterpreted {reinterpreted}.".format(
                    **{k: _t(summary.get(k, 0)) for k in ("applied", "rejected", "not_applied", "reinterpreted")}
                )
            ),
        ]
        rows = []
        for node, led in sorted((ledger.get("devices") or {}).items()):
            for e in led.get("lines") or []:
                said = " ".join(filter(None, [f"became: {e['became']}" if e.get("became") else "", e.get("frr_said")]))
                rows.append([node, e.get("line_no"), e.get("line"), e.get("status"), said])
            for u in led.get("unrequested") or []:
                rows.append([node, "-", u.get("line"), "unrequested", f"{u.get('change')}; no line asked for it"])
        if rows:
            story.append(self.table(["node", "#", "line", "status", "FRR"], rows[:300], [0.1, 0.06, 0.4, 0.14, 0.3],
                                    mono_cols=(2,)))
        return story

    def intent_part(self) -> list:
        intent = self.result.get("intent") or {}
        inferred = intent.get("inferred") or {}
        if not intent:
            return []
        used = intent.get("used")
        story = [
            self.para("Intent " + ("(declared in expect; inferred intent shown for comparison)" if used == "declared"
                                   else "(inferred from the change lines: no expect was written)"), "h3")
        ]
        lines = list(inferred.get("basis") or []) or ["the lines intend no routing effect (cosmetic or unreferenced)"]
        for key in ("prefixes_added", "prefixes_removed", "prefixes_changed", "sessions_removed", "sessions_added"):
            if inferred.get(key):
                lines.append(f"{key}: {_item(inferred[key])}")
        settle = self.result.get("settle") or {}
        if settle.get("timer"):
            lines.append(f"settle window {settle.get('seconds')} s after the apply: {settle.get('timer')} of "
                         f"{settle.get('node')} {settle.get('subject')} ({settle.get('source')})")
        story.append(self.mono("\n".join(lines)))
        return story

    def invariants_section(self) -> list:
        inv = self.result.get("invariants") or []
        story = [self.para("4. Invariants", "h2")]
        if not inv:
            return story + [self.none("The lab declares no invariants.")]
        rows = [
            [i.get("kind"), _item(i.get("spec")), "holds" if i.get("ok") else "VIOLATED", i.get("detail")]
            for i in inv
        ]
        return story + [self.table(["kind", "spec", "result", "detail"], rows, [0.21, 0.3, 0.11, 0.38])]

    def rollback_section(self) -> list:
        rb = self.result.get("rollback") or {}
        story = [self.para("5. Rollback and its proof", "h2")]
        verified = rb.get("verified")
        story.append(
            self.para(
                "Rollback was rehearsed in the twin; the state after rollback "
                + (
                    "<b>equals the baseline snapshot</b>."
                    if verified
                    else "<b>did NOT equal the baseline</b>."
                )
                if verified is not None
                else "Rollback was not rehearsed (the run stopped earlier)."
            )
        )
        status = rb.get("status")
        if status:
            story.append(self.para({
                "restored": f"Outcome: <b>rollback restores</b> the baseline ({_t(rb.get('restored_after_s'))} s).",
                "restored_after_retry": f"Outcome: <b>rollback restores only after {_t(rb.get('restored_after_s'))} s</b> "
                                        "(further settling was needed: a protocol retry timer).",
                "lines_fail": "Outcome: <b>rollback lines fail</b>: they do not bring the running config back to the "
                              "baseline; the back-out plan is broken.",
                "not_restored": "Outcome: <b>the state was not restored</b>.",
            }.get(status, _t(status))))
        for node, lines in sorted((rb.get("lines") or {}).items()):
            story += [
                self.para(f"Inverse lines for {_t(node)}", "h3"),
                self.mono("\n".join(lines) if isinstance(lines, list) else str(lines)),
            ]
        if rb.get("mismatch"):
            story += [
                self.para("Differences from the baseline", "h3"),
                self.mono("\n".join(_item(x) for x in rb["mismatch"])),
            ]
        return story

    def risk_section(self) -> list:
        risk = self.result.get("risk") or {}
        story = [self.para("6. Risk", "h2")]
        story.append(
            self.para(
                f"Tier <b>{_t(risk.get('tier'))}</b>, score {_t(risk.get('score'))}, rubric {_t(risk.get('rubric_version'))}."
            )
        )
        factors = risk.get("factors") or []
        if factors:
            story.append(
                self.table(
                    ["factor", "value", "points"],
                    [[f.get("name"), _item(f.get("value")), f.get("points")] for f in factors],
                    [0.5, 0.3, 0.2],
                )
            )
        return story

    def production_section(self) -> list:
        tvp = self.p.get("twin_vs_production") or {}
        eg = self.p.get("egress") or {}
        story = [self.para("7. How the twin differs from production (NERC CIP-010-4 R1.5.2)", "h2")]
        diffs = tvp.get("differences") or ["not stated by the twin"]
        story.append(self.table(["difference"], [[d] for d in diffs], [1.0]))
        story += [self.para("How the differences are accounted for", "h3")]
        story.append(self.table(["measure"], [[m] for m in tvp.get("accounted_for_by") or []], [1.0]))
        story += [self.para("Egress", "h3")]
        story.append(
            self.kv(
                [
                    ("Outbound connections", eg.get("outbound")),
                    ("Contacted", ", ".join(_item(c) for c in eg.get("contacted") or []) or "none"),
                    ("Allowed networks", ", ".join(eg.get("policy") or []) or "not recorded"),
                    ("How it was held", eg.get("how_held")),
                ]
            )
        )
        return story

    def approvals_section(self) -> list:
        story = [self.para("8. Approvals", "h2")]
        if not self.approvals:
            return story + [
                self.para(
                    f"Approval status: <b>{_t(self.approvals_text())}</b>. Approvals are separate signed ledger records bound to the seal digest; this report is re-rendered when they exist."
                )
            ]
        rows = [
            [
                a.get("approver"),
                a.get("role"),
                _decided(a),
                a.get("decided_at") or a.get("at"),
                a.get("bundle_digest") or a.get("digest") or a.get("ledger_index"),
            ]
            for a in self.approvals
        ]
        return story + [
            self.table(["approver", "role", "decision", "at", "record"], rows, [0.2, 0.15, 0.13, 0.22, 0.3])
        ]

    def crosswalk_section(self) -> list:
        controls = self.p.get("controls") or []
        story = [self.para("9. Control crosswalk", "h2")]
        if not controls:
            return story + [
                self.none(
                    "No control mapping was recorded for this bundle (no framework was selected when it was sealed)."
                )
            ]
        state_colour = {"satisfied": "#1a7f37", "not_satisfied": "#b3261e", "pending": "#9a6700"}
        rows = [
            [
                c.get("framework"),
                c.get("control_id"),
                c.get("title") or "",
                self.para(
                    f"<font color='{state_colour.get(c.get('state'), '#444444')}'>"
                    f"{_t(str(c.get('state') or '').replace('_', ' '))}</font>",
                    "cell",
                ),
                f"{c.get('artifact') or ''}: {c.get('why') or ''}",
            ]
            for c in controls
        ]
        story.append(
            self.para(
                "Each row: the control, whether this run's evidence satisfies it, and which part of the bundle speaks to it. The mapping is AEGIS's judgement, not an official crosswalk."
            )
        )
        return story + [
            self.table(
                ["framework", "control", "title", "state", "evidence / why"],
                rows,
                [0.155, 0.085, 0.21, 0.12, 0.43],
            )
        ]

    def timings_section(self) -> list:
        story = [self.para("10. Timings and software", "h2")]
        timings = self.result.get("timings") or {}
        if timings:
            total = sum(v for v in timings.values() if isinstance(v, int | float))
            story.append(
                self.para(
                    f"Seconds per step (total {total:.2f} s): "
                    + " · ".join(f"{_t(k)} {_t(v)}" for k, v in timings.items()),
                    "small",
                )
            )
        soft = (self.p.get("seal") or {}).get("software") or {}
        if soft:
            story += [
                self.para("Software", "h3"),
                self.para(
                    " · ".join(
                        f"{_t(k)} {_t(v if v is not None else 'n/a')}" for k, v in sorted(soft.items())
                    ),
                    "small",
                ),
            ]
        story.append(
            self.para(
                f"Run started {_t(self.result.get('started_at'))}, finished {_t(self.result.get('finished_at'))}."
            )
        )
        return story

    def verification_section(self, attachments: list[tuple[str, bytes]]) -> list:
        led = self.bundle.get("ledger") or {}
        keys = self.bundle.get("keys") or {}
        story = [self.para("11. How to verify this evidence", "h2")]
        steps = [
            "Save the attachment <b>bundle.json</b> from this PDF (or take it from the export folder).",
            "On any computer with Python 3 and the <font face='AEGIS-Mono'>cryptography</font> package, run "
            "<font face='AEGIS-Mono'>python3 verify_standalone.py report.pdf --key site-key.pub.pem</font> "
            "(the verifier is attached too). It needs no network and no AEGIS server.",
            "Obtain the site's public key through a channel you trust (not from this PDF) and check that its key id "
            "equals the one below.",
            "The verifier must print VERIFIED: it recomputes the seal digest, checks the Ed25519 DSSE signature, the "
            "in-toto subjects, the ledger leaf, the signed ledger checkpoint and the inclusion proof.",
            "Compare the seal digest it prints with the digest in the footer of every page of this PDF. The PDF is a "
            "rendering of the bundle and carries the digest, so it cannot be inside the signature itself; the "
            "matching digest is what ties these pages to the signed evidence.",
        ]
        story.append(
            self.table(
                ["#", "step"], [[i + 1, self.para(s, "cell")] for i, s in enumerate(steps)], [0.05, 0.95]
            )
        )
        story.append(self.para("Trust roots and ledger", "h3"))
        pairs = []
        for kid, pem in sorted(keys.items()):
            pairs += [("Signing key id", kid), ("Key fingerprint", _fingerprint(pem))]
        pairs += [
            ("Ledger origin", led.get("origin")),
            ("Ledger position", self.ledger_position()),
            ("Leaf hash", led.get("leaf_hash")),
        ]
        story.append(self.kv(pairs, mono_keys=tuple(k for k, _ in pairs)))
        story.append(self.para("Checkpoint (C2SP signed note) as sealed", "h3"))
        story.append(self.mono((led.get("tlog_proof") or "").partition("\n\n")[2]))
        story.append(self.para("Attachments inside this PDF", "h3"))
        story.append(
            self.table(
                ["file", "sha256"],
                [[name, hashlib.sha256(data).hexdigest()] for name, data in attachments],
                [0.3, 0.7],
                mono_cols=(1,),
            )
        )
        story.append(self.para("12. Retention", "h2"))
        story.append(
            self.para(
                "Keep this bundle and its ledger for the longest period your frameworks require (for example "
                "PCI DSS 10.5.1: 12 months; HIPAA 164.316(b)(2)(i): 6 years). The ledger is append-only; "
                "<font face='AEGIS-Mono'>manage.py ledger_check</font> proves it was not rewritten."
            )
        )
        return story

    def build(self, attachments: list[tuple[str, bytes]]) -> bytes:
        from reportlab.lib.units import mm
        from reportlab.platypus import SimpleDocTemplate

        story: list = []
        story += self.cover()
        for section in (
            self.change_section,
            self.static_section,
            self.twin_section,
            self.invariants_section,
            self.rollback_section,
            self.risk_section,
            self.production_section,
            self.approvals_section,
            self.crosswalk_section,
            self.timings_section,
        ):
            story += section()
        story += self.verification_section(attachments)
        buf = io.BytesIO()
        run_id = self.result.get("run_id", "")
        doc = SimpleDocTemplate(
            buf,
            pagesize=self.pagesize,
            leftMargin=18 * mm,
            rightMargin=18 * mm,
            topMargin=18 * mm,
            bottomMargin=18 * mm,
            title=f"AEGIS evidence report {run_id}",
            author="AEGIS",
            subject=f"Preflight evidence, seal {self.digest}",
            creator="AEGIS",
            invariant=1,
            initialFontName="AEGIS-Sans",
        )
        digest, verdict = self.digest, self.p.get("verdict", "")
        canvasmaker = _numbered_canvas(
            digest, f"AEGIS evidence · run {run_id} · {VERDICT_TEXT.get(verdict, verdict)}"
        )
        doc.build(story, canvasmaker=canvasmaker)
        return buf.getvalue()


def _numbered_canvas(digest: str, header: str):
    """A canvas that knows the page count when it draws the footer (page x/y)."""
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas

    class NumberedCanvas(Canvas):
        def __init__(self, *args, **kwargs):
            # Every page's preamble names the initial font: make it an embedded one (PDF/A).
            if not kwargs.get("initialFontName"):
                kwargs["initialFontName"] = "AEGIS-Sans"
            super().__init__(*args, **kwargs)
            self._saved: list[dict] = []

        def showPage(self):  # noqa: N802 - reportlab's name
            self._saved.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._saved)
            for state in self._saved:
                self.__dict__.update(state)
                self._decorate(total)
                super().showPage()
            super().save()

        def _decorate(self, total: int) -> None:
            w, h = self._pagesize
            self.saveState()
            self.setFont("AEGIS-Sans", 7.5)
            self.setFillColorRGB(0.3, 0.33, 0.36)
            self.drawString(18 * mm, h - 11 * mm, header)
            self.setStrokeColorRGB(0.7, 0.72, 0.75)
            self.line(18 * mm, 13 * mm, w - 18 * mm, 13 * mm)
            self.setFont("AEGIS-Mono", 7)
            self.drawString(18 * mm, 9 * mm, f"seal {digest}")
            self.setFont("AEGIS-Sans", 7.5)
            self.drawRightString(w - 18 * mm, 9 * mm, f"page {self._pageNumber}/{total}")
            self.restoreState()

    return NumberedCanvas


def _pdfa_finish(pdf_bytes: bytes, attachments: list[tuple[str, bytes, str, str, str]], title: str) -> bytes:
    """Attach files as PDF/A-3 associated files and write the PDF/A-3B markers."""
    import pikepdf
    from pikepdf import Array, Dictionary, Name

    now = datetime.now(UTC).strftime("D:%Y%m%d%H%M%SZ")
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        af = Array()
        for filename, data, mime, description, relationship in attachments:
            spec = pikepdf.AttachedFileSpec(
                pdf,
                data,
                description=description,
                filename=filename,
                mime_type=mime,
                creation_date=now,
                mod_date=now,
                relationship=Name("/" + relationship),
            )
            pdf.attachments[filename] = spec
            af.append(spec.obj)
        # pikepdf does not add the catalogue /AF array that makes these "associated files".
        pdf.Root.AF = pdf.make_indirect(af)
        pdf.Root.PageMode = Name.UseAttachments
        icc = pdf.make_stream(srgb_icc_profile())
        icc.N = 3
        pdf.Root.OutputIntents = Array(
            [
                Dictionary(
                    Type=Name.OutputIntent,
                    S=Name.GTS_PDFA1,
                    OutputConditionIdentifier="sRGB IEC61966-2.1",
                    Info="sRGB IEC61966-2.1",
                    DestOutputProfile=icc,
                )
            ]
        )
        with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
            meta["pdfaid:part"] = "3"
            meta["pdfaid:conformance"] = "B"
            meta["dc:title"] = title
            meta["dc:creator"] = ["AEGIS"]
            meta["xmp:CreatorTool"] = "AEGIS"
        out = io.BytesIO()
        pdf.save(out, min_version="1.7")
        return out.getvalue()


def report_render(
    bundle: dict[str, Any],
    statement: dict[str, Any],
    bundle_bytes: bytes,
    *,
    approvals: list[dict] | None = None,
    page_size: str = "A4",
    verifier_source: bytes | None = None,
    extra_attachments: list[tuple[str, bytes, str, str, str]] | None = None,
) -> bytes:
    """The examiner PDF of a sealed bundle, with bundle.json (and the verifier, keys) attached.

    `extra_attachments`: (file name, bytes, MIME type, description, AFRelationship) each,
    e.g. the OSCAL assessment results derived from the bundle.
    """
    attachments: list[tuple[str, bytes, str, str, str]] = [
        (
            "bundle.json",
            bundle_bytes,
            "application/json",
            "Sealed AEGIS evidence bundle (in-toto / DSSE)",
            "Source",
        )
    ]
    if verifier_source:
        attachments.append(
            (
                "verify_standalone.py",
                verifier_source,
                "text/x-python",
                "Offline verifier (Python 3 + cryptography)",
                "Supplement",
            )
        )
    for kid, pem in sorted((bundle.get("keys") or {}).items()):
        attachments.append(
            (
                f"site-key-{kid[:12]}.pub.pem",
                pem.encode("ascii"),
                "application/x-pem-file",
                "Site public key (copy)",
                "Supplement",
            )
        )
    attachments += list(extra_attachments or [])
    try:
        report = _Report(bundle, statement, approvals, page_size)
        drawn = report.build([(a[0], a[1]) for a in attachments])
        run_id = (statement.get("predicate") or {}).get("run_id", "")
        return _pdfa_finish(drawn, attachments, f"AEGIS evidence report {run_id}")
    except PdfError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PdfError(f"cannot draw the report: {type(exc).__name__}: {exc}") from exc
