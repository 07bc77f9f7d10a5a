"""The API's pagination: `{count, next, previous, results}` (a module of its own because DRF imports
it from settings, before the API modules can be imported)."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
