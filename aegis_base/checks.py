"""System checks: settings that contradict each other or cannot work stop `manage.py check`
(and every `manage.py` command, `serve`, the worker) before a run, not in the middle of one.

AEGIS_HIGH_RISK_APPROVERS=0 is the case that made this exist: the web read it as 1 while the
promotion gate raised, so a high-risk change looked approved and then could not be promoted.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from perimeter.egress import parse_allow_list
from twin import BACKENDS

RUN_DISPATCH_MODES = ("", "celery", "thread", "inline", "manual")


@checks.register()
def settings_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []

    def refuse(id_: str, message: str, hint: str) -> None:
        errors.append(checks.Error(message, hint=hint, id=f"aegis.{id_}"))

    approvers = settings.AEGIS_HIGH_RISK_APPROVERS
    if not isinstance(approvers, int) or approvers < 1:
        refuse(
            "E001",
            f"AEGIS_HIGH_RISK_APPROVERS={approvers!r}: a high-risk change needs at least one approver",
            "set it to 1 or more (default 2)",
        )
    try:
        parse_allow_list(list(settings.AEGIS_EGRESS_ALLOW))
    except ValueError as exc:
        refuse("E002", str(exc), "write comma-separated CIDR networks, e.g. 127.0.0.0/8,10.0.0.0/8")
    if settings.AEGIS_TWIN_BACKEND not in BACKENDS:
        refuse(
            "E003",
            f"AEGIS_TWIN_BACKEND={settings.AEGIS_TWIN_BACKEND!r} is not a twin backend",
            f"use one of: {', '.join(BACKENDS)}",
        )
    elif settings.AEGIS_TWIN_BACKEND == "http" and not settings.AEGIS_TWIN_AGENTS:
        refuse(
            "E007",
            "AEGIS_TWIN_BACKEND=http but AEGIS_TWIN_AGENTS names no agent: every run would fail",
            "set AEGIS_TWIN_AGENTS=http://HOST:5757[,…] (and AEGIS_AGENT_TOKEN_FILE), or another backend",
        )
    if settings.AEGIS_TWIN_CONVERGE_TIMEOUT_S <= 0:
        refuse(
            "E004",
            f"AEGIS_TWIN_CONVERGE_TIMEOUT_S={settings.AEGIS_TWIN_CONVERGE_TIMEOUT_S}: must be positive",
            "set the seconds a twin may take to converge (default 120)",
        )
    if settings.AEGIS_RUN_DISPATCH not in RUN_DISPATCH_MODES:
        refuse(
            "E005",
            f"AEGIS_RUN_DISPATCH={settings.AEGIS_RUN_DISPATCH!r} is not a dispatch mode",
            "leave it empty (celery when a broker is set, else worker threads), or inline/thread/manual",
        )
    if settings.AEGIS_INPROCESS_WORKERS < 1:
        refuse(
            "E006",
            f"AEGIS_INPROCESS_WORKERS={settings.AEGIS_INPROCESS_WORKERS}: runs would never start",
            "set it to 1 or more (default 2)",
        )
    if settings.AEGIS_APPROVAL_TTL_S <= 0:
        refuse(
            "E008",
            f"AEGIS_APPROVAL_TTL_S={settings.AEGIS_APPROVAL_TTL_S}: every signed approval would be expired at once",
            "set the seconds an approval stays valid (default 86400)",
        )
    return errors


@checks.register(checks.Tags.security, deploy=True)
def deploy_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`manage.py check --deploy`: what Django's own deploy checks cannot know about AEGIS."""
    warnings: list[checks.CheckMessage] = []
    if settings.SECRET_KEY == getattr(settings, "FIRST_TRY_SECRET_KEY", None):
        warnings.append(checks.Warning(
            "SECRET_KEY is the first-try key shipped in the code: sessions and CSRF tokens can be forged",
            hint="set AEGIS_SECRET_KEY (50+ random characters) or AEGIS_SECRET_KEY_FILE "
                 "(deploy/make-secrets.sh writes one)",
            id="aegis.W001",
        ))
    if getattr(settings, "SESSION_COOKIE_SECURE", False) and not getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        warnings.append(checks.Warning(
            "secure cookies without AEGIS_TLS_PROXY: behind a TLS proxy Django sees plain http and "
            "every sign-in fails (the cookie is never sent back)",
            hint="set AEGIS_TLS_PROXY=true when a proxy terminates TLS and sets X-Forwarded-Proto",
            id="aegis.W002",
        ))
    return warnings
