"""Failed sign-ins and bad API tokens are counted; past a limit they are refused for a while.

Counters live in Django's cache (Redis at a site when REDIS_URL is set, so every web process
shares them; process memory otherwise) and expire AEGIS_LOGIN_LOCKOUT_S after the last failure.
A user name is locked after AEGIS_LOGIN_FAILURES_MAX failed passwords from any address (so a
slow, spread guess at one account stops too); a client address after four times as many failures
of any kind (passwords for many names, or tokens). While locked, even the right password is
refused: the sign-in page answers 429 with a sentence saying how long to wait, the admin's
sign-in page shows the same sentence, and the API answers 429 (`Retry-After`).

A lock on a name can be used to keep its owner out for AEGIS_LOGIN_LOCKOUT_S; that is the usual
price of a lockout, and the reason the window is short. The client address is REMOTE_ADDR, or the
right-most address of AEGIS_CLIENT_IP_HEADER (e.g. X-Forwarded-For) when a TLS proxy sets it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled

log = logging.getLogger("aegis.login_limit")

IP_FACTOR = 4  # an address may fail for several names (a shared proxy) before it is locked


def client_address(request: HttpRequest | Any) -> str:
    header = getattr(settings, "AEGIS_CLIENT_IP_HEADER", "")
    meta = getattr(request, "META", {})
    if header:
        raw = meta.get("HTTP_" + header.upper().replace("-", "_"), "")
        # The proxy appends the address it saw; entries to its left are the client's to forge.
        addresses = [a.strip() for a in raw.split(",") if a.strip()]
        if addresses:
            return addresses[-1]
    return str(meta.get("REMOTE_ADDR", "") or "unknown")


def _key(kind: str, value: str) -> str:
    # Hashed: a user name or address is never a cache key as typed (length, characters).
    return f"aegis:login:{kind}:" + hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


def _limits() -> tuple[int, int]:
    return int(settings.AEGIS_LOGIN_FAILURES_MAX), int(settings.AEGIS_LOGIN_LOCKOUT_S)


def _count(key: str) -> tuple[int, float]:
    try:
        value = cache.get(key)
    except Exception as exc:  # noqa: BLE001 - any cache backend's "unreachable"
        _unreachable(exc)
        return (0, 0.0)
    return (value[0], value[1]) if value else (0, 0.0)


def _unreachable(exc: Exception) -> None:
    # The limit fails open: with Redis down, sign-ins and reads go on (Redis's own outage is answered
    # where it matters: a submission needs the broker, aegis_site/unavailable.py) and failures are
    # not counted for that while; a lock that failed closed would keep every user out instead.
    log.warning("sign-in limit: the cache is unreachable (%s); not counting for now", exc)


def login_wait(request: HttpRequest | Any, username: str | None = None) -> int:
    """Seconds until this address (and this user name, when given) may try again; 0: now."""
    limit, window = _limits()
    if limit <= 0:
        return 0
    now = time.time()
    waits = []
    checks = [(_key("ip", client_address(request)), limit * IP_FACTOR)]
    if username:
        checks.append((_key("user", username), limit))
    for key, bound in checks:
        failures, last = _count(key)
        remaining = last + window - now
        if failures >= bound and remaining > 0:
            waits.append(max(1, math.ceil(remaining)))
    return max(waits, default=0)


def login_failure_record(request: HttpRequest | Any, username: str | None = None) -> None:
    """Count one failure for the address (and the user name); each failure restarts the window."""
    limit, window = _limits()
    if limit <= 0:
        return
    keys = [_key("ip", client_address(request))] + ([_key("user", username)] if username else [])
    now = time.time()
    for key in keys:
        failures, _ = _count(key)
        try:
            cache.set(key, (failures + 1, now), timeout=window)
        except Exception as exc:  # noqa: BLE001
            _unreachable(exc)


def login_success_clear(username: str) -> None:
    """A right password (while not locked) clears the name's count; the address keeps its own."""
    try:
        cache.delete(_key("user", username))
    except Exception as exc:  # noqa: BLE001
        _unreachable(exc)


def wait_message(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return (f"Too many failed sign-ins from this address or for this user. Try again in about "
            f"{minutes} minute{'s' if minutes != 1 else ''}; ask an administrator if you are locked out.")


class _LimitedForm:
    """Mixed into Django's sign-in forms: refuse while locked, count the failures."""

    error_messages: dict[str, str]
    request: Any
    locked_for = 0  # seconds, when this attempt was refused by the limit (the page says so)

    def clean(self) -> dict[str, Any]:
        username = self.data.get("username") or ""  # type: ignore[attr-defined]
        wait = login_wait(self.request, username)
        if wait:
            self.locked_for = wait
            raise forms.ValidationError(wait_message(wait), code="locked")
        try:
            cleaned = super().clean()  # type: ignore[misc]
        except forms.ValidationError as exc:
            if getattr(exc, "code", None) == "invalid_login":
                login_failure_record(self.request, username)
            raise
        login_success_clear(username)
        return cleaned


class LimitedAuthenticationForm(_LimitedForm, AuthenticationForm):
    pass


class LimitedAdminAuthenticationForm(_LimitedForm, AdminAuthenticationForm):
    pass


class LimitedLoginView(LoginView):
    """Django's sign-in page with the limit; a locked attempt answers 429 with the sentence."""

    form_class = LimitedAuthenticationForm

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        wait = getattr(form, "locked_for", 0)
        if wait:
            response.status_code = 429
            response["Retry-After"] = str(wait)
        return response


class LimitedTokenAuthentication(TokenAuthentication):
    """DRF's token auth; a run of bad tokens from one address is refused for a while (429)."""

    def authenticate(self, request: Any) -> Any:
        if not request.META.get("HTTP_AUTHORIZATION", "").strip():
            return None  # no token: nothing to count (session or anonymous)
        wait = login_wait(request)
        if wait:
            raise Throttled(wait=wait, detail=wait_message(wait))
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            login_failure_record(request)
            raise
