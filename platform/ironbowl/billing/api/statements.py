"""Monthly statements: GET /api/v1/orgs/{org}/billing/statements/ (newest month first), one
statement with its payslips (…/{id}/), and its documents: …/{id}/html/ (printable),
…/{id}/pdf/ and …/{id}/csv/. Reading needs billing.view. HTML and PDF speak `?language=`
(en or zh-hans; default: the organization's locale); times are in the organization's zone."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils import translation
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.pagination import OrganizationCursorPagination
from ironbowl.billing import documents
from ironbowl.billing.api.serializers import StatementDetailSerializer, StatementSerializer
from ironbowl.billing.models import Statement
from tenants.errors import DomainError
from tenants.roles import Permission as P

LANGUAGE = OpenApiParameter(
    "language",
    OpenApiTypes.STR,
    enum=[code for code, _name in settings.LANGUAGES],
    description="The document's language; default: the organization's.",
)


class StatementPagination(OrganizationCursorPagination):
    ordering = ("-period",)


class StatementViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationViewSet):
    """The organization's monthly statements: open ones are re-rated from the ledger until the
    month closes; a closed one never changes."""

    model = Statement
    serializer_class = StatementSerializer
    pagination_class = StatementPagination
    filter_backends = []
    permission_map: ClassVar[dict[str, P]] = {
        "list": P.BILLING_VIEW,
        "retrieve": P.BILLING_VIEW,
        "html": P.BILLING_VIEW,
        "pdf": P.BILLING_VIEW,
        "csv": P.BILLING_VIEW,
    }

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.order_by("-period")

    def _language(self) -> str:
        asked = self.request.query_params.get("language")
        if asked is None:
            return self.organization.locale
        if asked not in dict(settings.LANGUAGES):
            raise DomainError(
                "unknown_language",
                _("Documents are written in %(languages)s.")
                % {"languages": ", ".join(code for code, _name in settings.LANGUAGES)},
                field="language",
            )
        return asked

    @extend_schema(responses=StatementDetailSerializer)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The statement with a payslip per digital employee (its lines and their total) and
        the organization's own lines (usage of no one in particular, the platform fee,
        discounts)."""
        statement = self.get_object()
        document = documents.document_of(statement, self.organization)
        serializer = StatementDetailSerializer(statement, context={"document": document})
        return Response(serializer.data)

    @extend_schema(
        parameters=[LANGUAGE],
        responses={(200, "text/html"): OpenApiResponse(OpenApiTypes.STR)},
    )
    @action(detail=True, methods=["get"])
    def html(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        """The statement as a printable web page."""
        statement = self.get_object()
        language = self._language()
        page = documents.render_html(statement, self.organization, language)
        response = HttpResponse(page, content_type="text/html; charset=utf-8")
        response["Content-Language"] = language
        return response

    @extend_schema(
        parameters=[LANGUAGE],
        responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    @action(detail=True, methods=["get"])
    def pdf(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        """The statement as a PDF (A4)."""
        statement = self.get_object()
        content = documents.render_pdf(statement, self.organization, self._language())
        response = HttpResponse(content, content_type="application/pdf")
        response["Content-Disposition"] = _attachment(statement, "pdf")
        return response

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY)})
    @action(detail=True, methods=["get"])
    def csv(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        """Every line of the statement and its totals, UTF-8 with a byte order mark."""
        statement = self.get_object()
        with translation.override(self.organization.locale):
            content = documents.render_csv(statement, self.organization)
        response = HttpResponse(content, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = _attachment(statement, "csv")
        return response


def _attachment(statement: Statement, extension: str) -> str:
    return f'attachment; filename="statement-{statement.period:%Y-%m}.{extension}"'
