"""The OpenAPI schema's error answers: every status code the API can give is documented.

drf-spectacular documents what a view's `extend_schema` names. The errors that DRF and the shared
permission give on every endpoint are added here once, so that no endpoint can forget one:

- 401 for a request without a valid token (every endpoint needs one);
- 403 for a role the endpoint is not for (e.g. a ministry user on the hoster portal);
- 404 for an object that is not there or not yours (an operation with a path parameter), and for
  a page number out of range on a paginated list (`?page=0`, `?page=999`);
- 400 for a bad filter value on an operation with query parameters (`?status=nonsense`).

An error body is `{"detail": "..."}` (400: the field errors, `{"status": ["..."]}`); an answer an
endpoint documents itself without a body gets that body here too.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import build_basic_type
from drf_spectacular.types import OpenApiTypes
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="what went wrong")


STANDARD_DESCRIPTIONS = {
    "400": 'a bad parameter: the field errors, e.g. {"status": ["..."]}',
    "401": "no valid token (Authorization: Token <key>)",
    "403": "your role may not use this endpoint",
    "404": "no such object (or not yours), or a page number out of range",
    "409": "a conflict with the current state",
}


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        wanted = ["401", "403"]
        if "{" in self.path or self._is_paginated_list():
            wanted.append("404")
        if self._has_query_filters():
            wanted.append("400")
        for code in wanted:
            responses.setdefault(code, {"description": STANDARD_DESCRIPTIONS[code]})
        for code, response in responses.items():
            if code[0] == "4" and not response.get("content"):
                body = build_basic_type(OpenApiTypes.OBJECT) if code == "400" else ErrorSerializer
                response["content"] = self._get_response_for_code(body, code, direction=direction)["content"]
        return dict(sorted(responses.items()))

    def _is_paginated_list(self) -> bool:
        return self.method == "GET" and self._is_list_view() and self._get_paginator() is not None

    def _has_query_filters(self) -> bool:
        """A filter set's parameters (django-filter answers 400 to a bad value); views that read
        parameters themselves document their 400 with `extend_schema`."""
        return self.method == "GET" and self._is_list_view() and bool(self._get_filter_parameters())
