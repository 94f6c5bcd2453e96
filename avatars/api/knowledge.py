"""Endpoints of the knowledge base: Q&A entries (with CSV import) and documents."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import django_filters
from django.db.models import QuerySet
from django.utils.http import parse_header_parameters
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from avatars import knowledge
from avatars.models import DocumentFormat, KnowledgeDocument, KnowledgeEntry, Upload
from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer, TenantRelatedField
from tenants.roles import Permission as P

T = TypeVar("T")

# --- Payloads ------------------------------------------------------------------------------------


def _checked(rule: Callable[[Any], T], value: Any) -> T:
    """Run a knowledge-base rule as a serializer check: same rule, same message."""
    try:
        return rule(value)
    except knowledge.InvalidValue as problem:
        raise serializers.ValidationError(problem.message, code="invalid") from None


class KnowledgeEntrySerializer(StrictModelSerializer):
    questions = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        help_text=gettext_lazy(
            "The ways people ask it: 1 to 20 variants, each at most 500 characters."
        ),
    )
    answer = serializers.CharField(
        trim_whitespace=False, help_text=gettext_lazy("At most 5000 characters.")
    )
    language = serializers.CharField(help_text=gettext_lazy("A BCP-47 tag: zh-CN, yue-HK, en-US…"))
    tags = serializers.ListField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text=gettext_lazy("At most 20 labels of at most 50 characters."),
    )

    class Meta:
        model = KnowledgeEntry
        fields = ["id", "questions", "answer", "language", "tags", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_questions(self, value: Any) -> list[str]:
        return _checked(knowledge.clean_questions, value)

    def validate_answer(self, value: Any) -> str:
        return _checked(knowledge.clean_answer, value)

    def validate_language(self, value: Any) -> str:
        return _checked(knowledge.clean_language, value)

    def validate_tags(self, value: Any) -> list[str]:
        return _checked(knowledge.clean_tags, value)


class KnowledgeDocumentSerializer(StrictModelSerializer):
    title = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=gettext_lazy("At most 300 characters; from a file, its name when left out."),
    )
    format = serializers.ChoiceField(
        choices=DocumentFormat.choices,
        required=False,
        help_text=gettext_lazy(
            "text or markdown for text sent as content; from a file, found from the file when "
            "left out (pdf for a PDF)."
        ),
    )
    content = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text=gettext_lazy("The text; a PDF's extracted text. Leave out with a source."),
    )
    language = serializers.CharField(help_text=gettext_lazy("A BCP-47 tag: zh-CN, yue-HK, en-US…"))
    tags = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False)
    source = TenantRelatedField(  # type: ignore[assignment]  # a declared field, not Field.source
        Upload,
        required=False,
        allow_null=True,
        help_text=gettext_lazy(
            "An upload (purpose document, complete) to read the text from: UTF-8 text, "
            "Markdown or PDF."
        ),
    )

    class Meta:
        model = KnowledgeDocument
        fields = [
            "id",
            "title",
            "format",
            "content",
            "language",
            "tags",
            "source",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_title(self, value: Any) -> str:
        # Left blank on creation from a file, the file's name is used.
        if not value and self.instance is None:
            return ""
        return _checked(knowledge.clean_title, value)

    def validate_language(self, value: Any) -> str:
        return _checked(knowledge.clean_language, value)

    def validate_tags(self, value: Any) -> list[str]:
        return _checked(knowledge.clean_tags, value)

    def validate_content(self, value: Any) -> str:
        if not value and self.instance is None:
            return ""  # creation from a file; the service says when neither is given
        return _checked(knowledge.clean_content, value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None and "source" in attrs:
            raise serializers.ValidationError(
                {"source": [_("The file of a document cannot be changed; create a new one.")]}
            )
        return attrs


class KnowledgeDocumentSummarySerializer(KnowledgeDocumentSerializer):
    """A list shows each document without its (possibly long) text."""

    characters = serializers.SerializerMethodField()

    class Meta(KnowledgeDocumentSerializer.Meta):
        fields = [
            "id",
            "title",
            "format",
            "language",
            "tags",
            "source",
            "characters",
            "created_at",
            "updated_at",
        ]

    def get_characters(self, document: KnowledgeDocument) -> int:
        return len(document.content)


class ImportProblemSerializer(StrictSerializer):
    row = serializers.IntegerField(
        allow_null=True, help_text=gettext_lazy("As a spreadsheet numbers it: the header is 1.")
    )
    column = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class ImportSkipSerializer(StrictSerializer):
    row = serializers.IntegerField()
    question = serializers.CharField()
    message = serializers.CharField()


class ImportReportSerializer(StrictSerializer):
    committed = serializers.BooleanField(help_text=gettext_lazy("Whether entries were written."))
    rows = serializers.IntegerField(help_text=gettext_lazy("Rows read, the header aside."))
    created = serializers.IntegerField(
        help_text=gettext_lazy("Entries created (validate mode: that a commit would create).")
    )
    skipped = ImportSkipSerializer(many=True)
    errors = ImportProblemSerializer(many=True)  # type: ignore[assignment]  # a declared field


class ImportFailureSerializer(StrictSerializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    report = ImportReportSerializer()


# --- CSV bodies ----------------------------------------------------------------------------------


class CSVParser(BaseParser):
    """Takes a CSV body as bytes; the import decodes it (UTF-8, with or without a BOM)."""

    media_type = "text/csv"

    def parse(  # type: ignore[override]  # the body stays bytes
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        _type, params = parse_header_parameters(media_type or "")
        charset = params.get("charset", "utf-8").lower().replace("_", "-")
        if charset not in ("utf-8", "utf8"):
            raise exceptions.ParseError(
                _(
                    "The file is %(charset)s; send it as UTF-8 (in a spreadsheet: save as "
                    "“CSV UTF-8”)."
                )
                % {"charset": charset}
            )
        body: bytes = stream.read() if stream is not None else b""
        return body


# --- Filters -------------------------------------------------------------------------------------


def _language(queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
    try:
        return queryset.filter(knowledge.language_filter(value))
    except knowledge.InvalidValue as problem:
        raise exceptions.ValidationError({name: [problem.message]}) from None


def _tag(queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
    return knowledge.with_tag(queryset, value)


class _KnowledgeFilter(django_filters.FilterSet):
    """What entries and documents are both filtered by."""

    language = django_filters.CharFilter(
        method=_language, label="Language (BCP-47); zh also finds zh-CN"
    )
    tag = django_filters.CharFilter(method=_tag, label="Tag (case-insensitive)")


class KnowledgeEntryFilter(_KnowledgeFilter):
    q = django_filters.CharFilter(
        method="search", label="Text in a question or the answer (case-insensitive)"
    )

    class Meta:
        model = KnowledgeEntry
        fields = ["language", "tag", "q"]

    def search(
        self, queryset: QuerySet[KnowledgeEntry], name: str, value: str
    ) -> QuerySet[KnowledgeEntry]:
        return knowledge.search_entries(queryset, value)


class KnowledgeDocumentFilter(_KnowledgeFilter):
    # Not `format`: DRF reads ?format= as the response format.
    document_format = django_filters.ChoiceFilter(
        field_name="format", choices=DocumentFormat.choices
    )
    q = django_filters.CharFilter(
        method="search", label="Text in the title or the text (case-insensitive)"
    )

    class Meta:
        model = KnowledgeDocument
        fields = ["language", "tag", "document_format", "q"]

    def search(
        self, queryset: QuerySet[KnowledgeDocument], name: str, value: str
    ) -> QuerySet[KnowledgeDocument]:
        return knowledge.search_documents(queryset, value)


# --- Views ---------------------------------------------------------------------------------------


class _CRUD(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationViewSet,
):
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]


class KnowledgeEntryViewSet(_CRUD):
    """Question-and-answer entries the organization's digital employees answer from."""

    model = KnowledgeEntry
    serializer_class = KnowledgeEntrySerializer
    filterset_class = KnowledgeEntryFilter
    ordering_fields = ["created_at", "updated_at"]
    permission_map: ClassVar[dict[str, P]] = {
        "list": P.KNOWLEDGE_VIEW,
        "retrieve": P.KNOWLEDGE_VIEW,
        "create": P.KNOWLEDGE_MANAGE,
        "partial_update": P.KNOWLEDGE_MANAGE,
        "destroy": P.KNOWLEDGE_MANAGE,
        "import_csv": P.KNOWLEDGE_MANAGE,
    }

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = knowledge.create_entry(
            self.actor, self.organization, **serializer.validated_data
        )

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = knowledge.update_entry(
            self.actor, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: KnowledgeEntry) -> None:
        knowledge.delete_entry(self.actor, instance)

    @extend_schema(
        summary="Import entries from CSV",
        description=(
            "A CSV file (UTF-8, with or without a byte-order mark) with the header "
            "`question,answer,language,tags`: question variants separated by `|` or a line "
            "break, tags by `;`. All rows are imported or none: any error imports nothing and "
            "the report lists each problem by row and column (the header is row 1). A row whose "
            "first question already exists in that language is skipped, so sending the same "
            "file again adds nothing. `mode=validate` (the default) only checks and reports; "
            "`mode=commit` imports. The body is limited like every API body (1 MB by default): "
            "split a larger file."
        ),
        request={"text/csv": OpenApiTypes.STR},
        parameters=[
            OpenApiParameter(
                "mode",
                str,
                enum=["validate", "commit"],
                default="validate",
                description="validate: check only; commit: import.",
            )
        ],
        responses={200: ImportReportSerializer, 400: ImportFailureSerializer},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[CSVParser],
        filter_backends=[],
        pagination_class=None,
    )
    def import_csv(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        mode = request.query_params.get("mode", "validate")
        if mode not in ("validate", "commit"):
            raise exceptions.ValidationError(
                {"mode": [_("Use mode=validate to check the file or mode=commit to import it.")]}
            )
        data = request.data if isinstance(request.data, bytes) else b""
        report = knowledge.import_entries_csv(
            self.actor, self.organization, data, commit=mode == "commit"
        )
        body = report.as_dict()
        if mode == "commit" and report.errors:
            count = len({(e["row"], e["column"]) for e in report.errors})
            return Response(
                {
                    "code": "csv_invalid",
                    "detail": _(
                        "The file has %(count)d problem(s); nothing was imported. Fix the rows "
                        "listed in the report and send the file again."
                    )
                    % {"count": count},
                    "report": body,
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(body)


class KnowledgeDocumentViewSet(_CRUD):
    """Documents (text, Markdown, or a PDF's text) the digital employees answer from."""

    model = KnowledgeDocument
    serializer_class = KnowledgeDocumentSerializer
    filterset_class = KnowledgeDocumentFilter
    ordering_fields = ["created_at", "updated_at", "title"]
    permission_map: ClassVar[dict[str, P]] = {
        "list": P.KNOWLEDGE_VIEW,
        "retrieve": P.KNOWLEDGE_VIEW,
        "create": P.KNOWLEDGE_MANAGE,
        "partial_update": P.KNOWLEDGE_MANAGE,
        "destroy": P.KNOWLEDGE_MANAGE,
    }

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        if self.action == "list":
            return KnowledgeDocumentSummarySerializer
        return KnowledgeDocumentSerializer

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        data["document_format"] = data.pop("format", "")
        serializer.instance = knowledge.create_document(self.actor, self.organization, **data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = knowledge.update_document(
            self.actor, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: KnowledgeDocument) -> None:
        knowledge.delete_document(self.actor, instance)


def register(router: SimpleRouter) -> None:
    """Add this slice's viewsets to the organization router."""
    router.register("knowledge/entries", KnowledgeEntryViewSet, basename="knowledge-entry")
    router.register("knowledge/documents", KnowledgeDocumentViewSet, basename="knowledge-document")
