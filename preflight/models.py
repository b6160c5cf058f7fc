"""Rows of the preflight app: labs, change requests, runs and their events.

Every long job is a row: a `PreflightRun` carries its status, and each progress step is a
`RunEvent` with a per-run monotonic `seq`, so a page that reconnects asks for "everything
after seq N" and never misses or repeats a step. The database is the record; the websocket
is only a notification.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from preflight.core.pipeline import run_id_new


class Lab(models.Model):
    """A bundled or site lab: a folder with a containerlab `.clab.yml` (synced by `sync_labs`)."""

    name = models.SlugField(max_length=64, unique=True)
    folder = models.CharField(max_length=500, help_text="Lab folder, absolute or relative to AEGIS_LABS_DIR.")
    digest = models.CharField(max_length=80, blank=True, help_text="sha256 of the topology file.")
    description = models.TextField(blank=True)
    # Router names in the lab (the devices a change may touch), in display order.
    routers = models.JSONField(default=list, blank=True)
    # node -> criticality label (aegis.criticality), shown next to each device.
    criticality = models.JSONField(default=dict, blank=True)
    invariants = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ChangeRequest(models.Model):
    """What an operator asked for: config per device (or an intent), expected effects, frameworks."""

    SOURCE_CHOICES = [("form", "form"), ("api", "api"), ("llm", "llm"), ("file", "file"), ("agent", "agent")]

    operator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="changes")
    lab = models.ForeignKey(Lab, on_delete=models.PROTECT, related_name="changes")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    devices = models.JSONField(default=dict, blank=True)  # node -> config text
    intent = models.TextField(blank=True)  # natural-language intent, when no config is given
    expect = models.JSONField(default=dict, blank=True)
    frameworks = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=10, choices=SOURCE_CHOICES, default="form")
    # The change file as submitted (CLI `--change`), parsed once at submission and sealed with the run.
    change_text = models.TextField(blank=True)
    # Desired state as input (preflight.core.desired): the files' digests, frr-reload's delta per
    # router and where they came from (`git A..B`); {} for a change given as lines. Sealed as `change.desired`.
    desired = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.title} ({self.lab.name})"


class PreflightRun(models.Model):
    STATUS_QUEUED = "queued"
    STATUS_RUNNING = "running"
    STATUS_FINISHED = "finished"
    STATUS_FAILED = "failed"
    STATUS_CHOICES = [(s, s) for s in (STATUS_QUEUED, STATUS_RUNNING, STATUS_FINISHED, STATUS_FAILED)]
    VERDICT_CHOICES = [(v, v) for v in ("blocked", "needs_approval", "ship_ready")]

    run_id = models.CharField(max_length=40, unique=True, default=run_id_new)
    change = models.ForeignKey(ChangeRequest, on_delete=models.PROTECT, related_name="runs")
    backend = models.CharField(max_length=20)
    # The run's own options over the site defaults: pipeline keyword arguments
    # (services.execution.PIPELINE_OPTIONS, e.g. converge_timeout), http agents, seal: false.
    options = models.JSONField(default=dict, blank=True)
    # Where its files go (result.json, bundle.json, report.pdf); empty: AEGIS_RUNS_DIR/<run_id>.
    folder = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=STATUS_QUEUED, db_index=True)
    verdict = models.CharField(max_length=20, choices=VERDICT_CHOICES, blank=True, db_index=True)
    risk_tier = models.CharField(max_length=10, blank=True)
    risk_score = models.IntegerField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    # Counts an approver weighs at a glance (selectors.blast_radius of the result), kept apart
    # from the large result document so the queue never loads snapshots.
    blast = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)  # why the run failed, in words an operator can act on
    last_seq = models.IntegerField(default=0)  # highest RunEvent.seq; allocated under a row lock
    # The seal digest once the evidence is sealed: the link to its `evidence.Bundle` row, which
    # holds the seal state (files, ledger index, decisions); decisions bind to it.
    bundle_digest = models.CharField(max_length=100, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        permissions = [("decide_preflightrun", "Can approve or reject a run that needs approval")]

    def __str__(self) -> str:
        return self.run_id

    @property
    def done(self) -> bool:
        return self.status in (self.STATUS_FINISHED, self.STATUS_FAILED)


class RunEvent(models.Model):
    run = models.ForeignKey(PreflightRun, on_delete=models.CASCADE, related_name="events")
    seq = models.IntegerField()
    step = models.CharField(max_length=40)
    status = models.CharField(max_length=10)  # started | ok | failed | info
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="runevent_unique_seq")]

    def __str__(self) -> str:
        return f"{self.run.run_id}#{self.seq} {self.step} {self.status}"

    def as_dict(self) -> dict:
        return {
            "seq": self.seq,
            "step": self.step,
            "status": self.status,
            "message": self.message,
            "data": self.data,
            "at": self.created.isoformat(),
        }
