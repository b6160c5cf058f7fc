"""The API base view every app's REST views build on (token first, then the session), and the
one way list filters are declared and checked, so the schema and the server agree on them."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from drf_spectacular.utils import OpenApiParameter
from drf_spectacular.views import SpectacularAPIView
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from aegis_base.login_limit import LimitedTokenAuthentication


class AegisAPIView(APIView):
    # Token auth first, so an anonymous client is told to send a token (401, not 403).
    # A run of bad tokens from one address is refused for a while (429, aegis_base.login_limit).
    authentication_classes = [LimitedTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]


def filter_param(
    name: str,
    *,
    enum: Iterable[str] | None = None,
    fmt: str | None = None,
    max_length: int | None = None,
    description: str = "",
) -> OpenApiParameter:
    """A list filter in the OpenAPI document: a non-empty string (leave it out for no filter)."""
    schema: dict[str, Any] = {"type": "string", "minLength": 1}
    if enum is not None:
        schema["enum"] = list(enum)
    elif fmt is None:
        schema["pattern"] = r"^[^\x00]*[^\s\x00][^\x00]*$"  # not only blanks, no NUL (Django refuses it)
    if fmt is not None:
        schema["format"] = fmt
    if max_length is not None:
        schema["maxLength"] = max_length
    return OpenApiParameter(name, schema, description=description or None)


def filters_blank_refuse(params: Mapping[str, Any], parameters: Iterable[OpenApiParameter]) -> None:
    """400 for a filter given with an empty value: the schema says non-empty, and `?verdict=` is more
    likely a client's mistake than a wish for no filter."""
    blank = {
        p.name: ["Give a value, or leave the parameter out for no filter."]
        for p in parameters
        if p.name in params and not str(params.get(p.name, "")).strip()
    }
    if blank:
        raise ValidationError(blank)


class SchemaView(SpectacularAPIView):
    """`/api/schema/`, made by one thread at a time.

    drf-spectacular's generator is not thread-safe: two clients asking at once (the threaded test
    server, daphne's thread pool) got a 500 for one of them. Making it takes a fraction of a second.
    """

    _lock = threading.Lock()

    def _get_schema_response(self, request: Any) -> Response:
        with self._lock:
            return super()._get_schema_response(request)
