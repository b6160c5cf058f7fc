"""Disk full while sealing: a clear error, nothing half-sealed, the ledger consistent (a real small filesystem).

The export folder is on a tmpfs this test mounts (root) with room for none, or only part, of what
a seal writes (bundle.json fits, report.pdf does not, ...). A seal that fails must leave no ledger
leaf, no checkpoint, no Bundle row, no file and no staging folder; `ledger_check` passes; once
there is room again the same seal succeeds.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from evidence.models import Bundle, Checkpoint, LedgerEntry
from evidence.services import SealError, ledger_check, run_seal
from evidence.tests.conftest import LAB

pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small filesystem needs root")]


def export_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def small_fs():
    mount = Path(tempfile.mkdtemp(prefix="aegis-diskfull-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)
        mount.rmdir()


def fill(mount: Path, leave: int) -> Path:
    """Fill the filesystem until `leave` bytes are free (tmpfs counts in 4 KiB pages)."""
    filler = mount / "filler"
    with open(filler, "wb", buffering=0) as fh:  # unbuffered: nothing left to flush at close
        try:
            while fh.write(b"\0" * 4096):
                pass
        except OSError:
            pass
    st = os.statvfs(mount)
    assert st.f_bavail == 0
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


@pytest.mark.parametrize("room", [0.0, 0.3, 0.7, 0.95])
def test_a_seal_that_runs_out_of_disk_leaves_nothing_and_the_ledger_consistent(
        room, evidence_home, tmp_path, result_needs_approval, change_text, small_fs):
    seal = dict(lab_dir=LAB, change_text=change_text, frameworks=["nist-800-53r5"], operator="olivia")
    # given what one seal writes (measured on a roomy disk)
    other = {**result_needs_approval, "run_id": result_needs_approval["run_id"][:-1] + "x"}  # another digest
    run_seal(other, out_dir=tmp_path / "roomy", **seal)
    need = export_bytes(tmp_path / "roomy")
    counts = (Bundle.objects.count(), LedgerEntry.objects.count(), Checkpoint.objects.count())
    # when the export folder's disk has room for only part of it
    filler = fill(small_fs, int(need * room))
    out = small_fs / "run"
    with pytest.raises(SealError) as err:
        run_seal(result_needs_approval, out_dir=out, **seal)
    # then the error says the disk is full, and nothing of the seal exists anywhere
    assert "No space left on device" in str(err.value), err.value
    assert (Bundle.objects.count(), LedgerEntry.objects.count(), Checkpoint.objects.count()) == counts
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"] or \
        (sorted(p.name for p in small_fs.iterdir()) == ["filler", "run"] and not any(out.iterdir()))
    report = ledger_check()
    assert report.ok, report.problems
    # when there is room again, the same seal succeeds and the ledger still checks
    filler.unlink()
    outcome = run_seal(result_needs_approval, out_dir=out, **seal)
    assert outcome.bundle_path.exists() and outcome.pdf_path.exists()
    assert ledger_check().ok
