"""Request bodies AEGIS refuses before it reads them: too large (413) or nested too deep (400).

Django's DATA_UPLOAD_MAX_MEMORY_SIZE guards `request.body` and form fields, but DRF's parsers read
the stream themselves, so a 10 MB JSON body was read and parsed in full; and the standard library's
JSON decoder raises RecursionError (a 500) on a body like `[[[[...]]]]`. Both are answered here with
a status and a sentence that says what to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser


def body_limit() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def too_large_message(size: int | None) -> str:
    limit = body_limit()
    got = f"{size} bytes" if size is not None else "more than that"
    return (f"The request body is larger than the limit of {limit} bytes ({got}); send a smaller change "
            "(AEGIS_MAX_UPLOAD_BYTES sets the limit).")


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


class BoundedJSONParser(JSONParser):
    """JSON with a size bound (also for bodies without Content-Length) and a nesting bound."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        limit = body_limit()
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(too_large_message(None))
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(raw.decode(encoding), parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class BodySizeLimitMiddleware:
    """413 before the body is read when Content-Length already says it is too large.

    Multipart uploads are left to Django (file parts stream to disk; form fields have their bound).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            size = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = 0
        if size > body_limit() and not request.content_type.startswith("multipart/"):
            message = too_large_message(size)
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": message}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
