"""Celery app. With no CELERY_BROKER_URL the tasks run eagerly in-process (a first try)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")

app = Celery("aegis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
