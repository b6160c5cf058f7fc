"""The OpenAPI document states every status an operation can answer, each with its error body.

drf-spectacular documents only the success a view declares; AEGIS's views also answer 400 (bad
body or query), 401 (no or bad credentials), 403 (role, object or CSRF), 404 (unknown id), 413
(body over AEGIS_MAX_UPLOAD_BYTES), 415 (a body that is not JSON), 429 (too many failed sign-ins or tokens from this address,
`aegis_base.login_limit`) and 503 (database or Redis unreachable). `AegisAutoSchema` adds those
to every operation they can happen on, derived from the operation itself (a path parameter can be
unknown, a body can be malformed or too large), so a new view is documented without a hand list.
A view narrows the set with `api_refusals` (e.g. a list every signed-in user may read has no 403) or
adds to it with `api_also_refuses` (409 where the site's state can refuse a good request).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

NO_NUL = "^[^\\x00]*$"

# Every operation: credentials, the sign-in/token rate limit, a backing service down.
ALWAYS = (401, 429, 503)

ERROR_DESCRIPTIONS = {
    400: "Bad input: field errors ({field: [message]}, nested for devices/desired/expect) or {detail}",
    401: "No credentials, or a token that is not valid",
    409: "The request is well formed but the site's state refuses it (e.g. no device inventory covers the bundle)",
    403: "Signed in, but the role or the object is not allowed (or a session POST without its CSRF token)",
    404: "No such object (unknown or malformed id)",
    413: "The request body is larger than AEGIS_MAX_UPLOAD_BYTES",
    415: "The body is not JSON (Content-Type must be application/json)",
    429: "Too many failed sign-ins or bad tokens from this address or for this user; wait and retry",
    503: "The database or Redis is unreachable; the request can be retried when it is back",
}

ErrorSerializer = inline_serializer(
    name="Error",
    fields={"detail": serializers.CharField(help_text="What went wrong and, where it helps, what to do")},
)


def validation_error_schema() -> dict[str, Any]:
    messages = {"type": "array", "items": {"type": "string"}}
    return {
        "type": "object",
        "description": "Field errors: {field: [message]}; devices, desired and expect nest one level "
        "({devices: {r1: [message]}}); a body that is not JSON gives {detail: message}.",
        "properties": {"detail": {"type": "string"}, "non_field_errors": messages},
        "additionalProperties": {
            "anyOf": [messages, {"type": "object", "additionalProperties": messages}],
        },
    }


class AegisAutoSchema(AutoSchema):
    def refusals(self) -> set[int]:
        declared = getattr(self.view, "api_refusals", None)
        codes = set(ALWAYS) | {403}
        if self._has_path_params():
            codes.add(404)
        if self._has_query_params() or self._has_body():
            codes.add(400)
        if self._has_body():
            codes |= {413, 415}
        if declared is not None:
            codes = set(ALWAYS) | set(declared)
        return codes | set(getattr(self.view, "api_also_refuses", ()))

    def _map_serializer_field(self, field: Any, direction: str, bypass_extensions: bool = False) -> dict:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # PostgreSQL cannot store a NUL character and Django refuses one in every text field (400);
        # the document says so, so a generated string with \x00 is a request the schema already refuses.
        if (
            isinstance(field, serializers.CharField)
            and isinstance(schema, dict)
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum", "$ref"} & schema.keys()
        ):
            schema["pattern"] = NO_NUL
        return schema

    def _has_path_params(self) -> bool:
        return "{" in self.path

    def _has_query_params(self) -> bool:
        return any(p.get("in") == "query" for p in self._get_parameters())

    def _has_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH") and self._get_request_body() is not None

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in sorted(self.refusals()):
            if str(code) in responses:
                continue
            if code == 400:
                body = OpenApiResponse(response=ErrorSerializer, description=ERROR_DESCRIPTIONS[400])
                entry = self._get_response_for_code(body, "400", direction=direction)
                entry["content"] = {"application/json": {"schema": validation_error_schema()}}
            else:
                body = OpenApiResponse(response=ErrorSerializer, description=ERROR_DESCRIPTIONS[code])
                entry = self._get_response_for_code(body, str(code), direction=direction)
            responses[str(code)] = entry
        return responses

