"""Cursor pagination: stable under inserts, and its cost does not grow with the page number."""

from rest_framework.pagination import CursorPagination


class OrganizationCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-created_at",)
