"""The examiner PDF drawn by the core alone (no database): layout facts a reader relies on."""

from __future__ import annotations

import io
import subprocess

import pikepdf
import pytest
from PIL import Image

from evidence.core.keys import SigningKey
from evidence.core.pdf import PdfError, report_render
from evidence.tests.conftest import core_bundle, result_fixture
from evidence.verify_standalone import verify_bytes

VERDICT_RGB = {"blocked": (0xB3, 0x26, 0x1E), "needs_approval": (0x9A, 0x67, 0x00)}


@pytest.fixture(scope="module")
def key():
    return SigningKey.generate()


def render(result, key, **kw):
    bundle, data, statement = core_bundle(result, key)
    return bundle, report_render(bundle, statement, data, **kw)


def first_page_png(pdf: bytes, tmp_path) -> Image.Image:
    (tmp_path / "r.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-singlefile", "-f", "1", "-l", "1", str(tmp_path / "r.pdf"),
                    str(tmp_path / "page")], check=True)  # fmt: skip
    return Image.open(tmp_path / "page.png").convert("RGB")


@pytest.mark.parametrize("fixture", ["blocked", "needs_approval"])
def test_pdf_first_page_shows_the_verdict_banner_in_its_colour(fixture, key, tmp_path):
    _, pdf = render(result_fixture(fixture), key, page_size="A4")
    page = first_page_png(pdf, tmp_path)
    top = page.crop((0, 0, page.width, page.height // 4))
    colours = {c for _, c in top.getcolors(maxcolors=100_000)}

    def present(rgb):
        return any(all(abs(a - b) <= 6 for a, b in zip(c, rgb, strict=True)) for c in colours)

    assert present(VERDICT_RGB[fixture]), "no verdict banner in the verdict's colour"
    assert not any(present(rgb) for name, rgb in VERDICT_RGB.items() if name != fixture)


def test_pdf_page_size_and_page_numbers(key):
    _, a4 = render(result_fixture("blocked"), key, page_size="A4")
    _, letter = render(result_fixture("blocked"), key, page_size="letter")
    with pikepdf.open(io.BytesIO(a4)) as pdf:
        assert [round(float(v)) for v in pdf.pages[0].MediaBox] == [0, 0, 595, 842]
        pages = len(pdf.pages)
    with pikepdf.open(io.BytesIO(letter)) as pdf:
        assert [round(float(v)) for v in pdf.pages[0].MediaBox] == [0, 0, 612, 792]
    text = subprocess.run(["pdftotext", "-", "-"], input=a4, capture_output=True, check=True).stdout.decode()
    assert [f"page {n}/{pages}" in text for n in range(1, pages + 1)] == [True] * pages


def test_pdf_unknown_page_size_is_a_clear_error(key):
    with pytest.raises(PdfError, match="use A4 or Letter"):
        render(result_fixture("blocked"), key, page_size="A3")


def test_pdf_embeds_every_font_and_marks_pdfa3(key):
    _, pdf_bytes = render(result_fixture("needs_approval"), key, page_size="A4")
    fonts = subprocess.run(
        ["pdffonts", "-"], input=pdf_bytes, capture_output=True, check=True
    ).stdout.decode()
    rows = fonts.splitlines()[2:]
    assert rows and all(" yes " in row for row in rows), fonts  # the "emb" column
    assert "Helvetica" not in fonts and "Times" not in fonts
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        assert pdf.pdf_version >= "1.7"
        assert pdf.Root.PageMode == pikepdf.Name.UseAttachments
        assert pdf.open_metadata()["pdfaid:part"] == "3"


def test_pdf_text_from_the_change_is_drawn_as_text_not_markup(key):
    # Titles and configs come from operators and from the LLM: markup must stay literal,
    # non-ASCII must render, and none of it may break the PDF.
    result = result_fixture("needs_approval")
    result["change"]["title"] = "Änderung <b>für</b> Kunde & Co — ✓"
    result["change"]["devices"]["r1"] = (
        "ip prefix-list X seq 5 permit 10.0.0.0/8 le 24 <script>\n" + "x" * 500 + "\n"
    )
    _, pdf = render(result, key, page_size="A4")
    assert all(c.ok for c in verify_bytes(pdf, {key.keyid: key.public_key}))
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "Änderung <b>für</b> Kunde & Co — ✓" in text and "<script>" in text
    assert text.count("x") >= 500  # the long line wrapped, it was not cut off


def test_pdf_with_a_minimal_result_still_renders(key):
    # A run blocked at the first twin step has no snapshots, diff, rollback or risk.
    result = result_fixture("blocked")
    for field in ("snapshots", "diff", "rollback", "invariants", "risk", "timings", "llm"):
        result[field] = None
    result["twin"] = {"backend": "netns", "tier": "real"}
    _, pdf = render(result, key, page_size="A4")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "BLOCKED" in text and "Rollback was not rehearsed" in text


def test_pdf_shows_the_fib_diff_its_witnesses_and_the_failure_scenarios(key):
    # The shapes a real fabric run wrote (labs/fabric/changes/forwarding_loop.yml, single_homed.yml).
    result = result_fixture("blocked")
    result["dataplane"] = {
        "classes": 25, "ingresses": 6, "pairs_checked": 150, "pairs_looping": {"before": 0, "after": 3},
        "pairs_dropped": {"before": 84, "after": 81}, "seconds": 0.08, "notes": [],
        "changed": [{"kind": "loop", "family": "ipv4", "ranges": ["10.77.0.0/16"], "declared": False,
                     "ingresses": ["leaf2", "leaf3", "spine1"], "before": ["dropped@ingress:no route"],
                     "after": ["loop@leaf3,spine1"], "witness_address": "10.77.0.1",
                     "text": "from leaf2, leaf3, spine1, 10.77.0.0/16 now looping (leaf3, spine1) "
                             "(was dropped at the ingress (no route))"}],
        "witnessed": [{"statement": "…", "kind": "loop", "from": "leaf2", "address": "10.77.0.1",
                       "expected": "ttl_exceeded", "note": "", "result": "agree",
                       "why": "the packet saw ttl_exceeded, as computed",
                       "probe": {"replied": False, "ttl_exceeded": True, "unreachable": False,
                                 "output": "From 10.1.0.11 icmp_seq=1 Time to live exceeded"}}]}
    result["dataplane"]["loops"] = result["dataplane"]["changed"]
    result["dataplane"]["blackholes"] = []
    result["resilience"] = {"seconds": 72.5, "redundancy_removed_declared": [], "scenarios": [{
        "name": "node_down spine2", "kind": "node_down", "source": "lab", "declared": False,
        "before": {"reachable_pairs": 26, "sessions_up": 14, "routes": 52},
        "after": {"reachable_pairs": 18, "sessions_up": 12, "routes": 44},
        "lost": ["leaf1 -> leaf3 (10.254.0.5)", "leaf1: route 10.254.0.5/32"], "gained": [],
        "seconds": {"before": 12.3, "after": 23.1}, "settled": {"before": True, "after": True}}]}
    _, pdf = render(result, key, page_size="A4")
    assert all(c.ok for c in verify_bytes(pdf, {key.keyid: key.public_key}))
    text = " ".join(subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True,
                                   check=True).stdout.decode().split())
    assert "150 pairs followed" in text and "10.77.0.0/16 now looping (leaf3, spine1)" in text
    assert "Witnessed by real packets" in text and "leaf2 -> 10.77.0.1" in text and "agree" in text
    assert "node_down spine2" in text and "REDUNDANCY LOST: leaf1 -> leaf3 (10.254.0.5)" in text
