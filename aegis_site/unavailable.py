"""A backing service down (PostgreSQL, Redis) is a 503 that says which, never a 500.

The database or Redis can go away under a running server (a failover, a restart, a full disk on
the database host). Each request then fails where it first touches it: in a view, or in a
middleware (the session is read and saved there). Both roads end here: `process_exception` for
what a view raises, `handler500` (aegis_site.urls) for what a middleware raises, since Django turns
those into a 500 before any outer middleware could see them. The API answers JSON in the shape
every other refusal has (`{"detail": ...}`, documented as 503 by aegis_base.api.schema), pages a
plain 503 page; both carry Retry-After. Nothing is cached: the next request after the service is
back gets a fresh connection and succeeds.
"""

from __future__ import annotations

import logging
import sys

from django.db import InterfaceError as DbInterfaceError
from django.db import OperationalError as DbOperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("aegis.web")

RETRY_AFTER_S = 30
DATABASE_ERRORS = (DbOperationalError, DbInterfaceError)
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, BrokerError)


def service_down(exc: BaseException | None) -> str | None:
    """Which backing service `exc` (or what caused it) says is unreachable: "database", "Redis", or None."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, DATABASE_ERRORS):
            return "database"
        if isinstance(exc, REDIS_ERRORS):
            return "Redis"
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def unavailable_response(request: HttpRequest, service: str) -> HttpResponse:
    """The 503 for `service`: JSON for the API, a page otherwise."""
    what = ("The database is unreachable" if service == "database"
            else "Redis (the task queue and live updates) is unreachable")
    message = f"{what}; nothing was changed by this request. Try again in a moment."
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": message}, status=503)
    else:
        # No request context: the page must render without the database (no user, no session).
        response = HttpResponse(render_to_string("503.html", {"message": message}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


class ServiceUnavailableMiddleware:
    """503 for a view that found the database or Redis unreachable (the rest goes to handler500)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        service = service_down(exc)
        if service is None:
            return None
        log.error("%s unreachable during %s %s: %s", service, request.method, request.path, exc)
        return unavailable_response(request, service)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a backing service down anywhere in the request (a middleware too) is a 503."""
    service = service_down(sys.exc_info()[1])
    if service is not None:
        return unavailable_response(request, service)
    return defaults.server_error(request)
