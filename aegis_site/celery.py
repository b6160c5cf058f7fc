"""Celery app. With no CELERY_BROKER_URL the tasks run eagerly in-process (a first try)."""

import os

from celery import Celery
from celery.signals import worker_ready

from twin.reap import twin_reap_orphans

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")

app = Celery("aegis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _reap_orphaned_twins(**_kwargs: object) -> None:
    """A worker that starts removes the twins of workers that died on this host (acks_late redelivers
    their runs; their namespaces and daemons would otherwise stay until someone ran `twin_reap`)."""
    twin_reap_orphans()
