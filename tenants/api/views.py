"""Endpoints for organizations, members, invitations, API keys and the audit log."""

from __future__ import annotations

from typing import Any

import structlog
from django.contrib.auth import authenticate, login, logout
from django.db import models
from django.middleware.csrf import get_token
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, permissions, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ironbowl.api.base import OrganizationAPIView, OrganizationViewSet
from ironbowl.api.throttling import AnonymousRateThrottle, CredentialRateThrottle
from tenants import selectors, services
from tenants.api import filters, serializers
from tenants.audit import Actor
from tenants.models import ApiKey, AuditEntry, Invitation, Membership, User
from tenants.roles import Permission as P
from tenants.roles import Role


def _request_id(request: Request) -> str:
    # The same source as OrganizationScoped.actor: the caller's header, else the logged id.
    request_id = request.META.get("HTTP_X_REQUEST_ID", "")
    return str(request_id or structlog.contextvars.get_contextvars().get("request_id", ""))


def _user(request: Request) -> User:
    user = request.user
    if not isinstance(user, User):
        raise exceptions.PermissionDenied(_("Sign in as a person to do this; API keys cannot."))
    return user


class LoginView(APIView):
    permission_classes = [permissions.AllowAny]
    throttle_classes = [AnonymousRateThrottle]

    @extend_schema(request=serializers.LoginSerializer, responses=serializers.MeSerializer)
    def post(self, request: Request) -> Response:
        payload = serializers.LoginSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=payload.validated_data["email"].lower(),
            password=payload.validated_data["password"],
        )
        if user is None:
            raise exceptions.AuthenticationFailed(
                _("The email address or password is wrong."), code="bad_credentials"
            )
        login(request._request, user)
        get_token(request._request)
        return Response(_me(user))


class LogoutView(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _me(user: User) -> dict[str, Any]:
    return serializers.MeSerializer(
        {
            "email": user.email,
            "full_name": user.full_name,
            "is_staff": user.is_staff,
            "memberships": list(selectors.memberships_of_user(user)),
        }
    ).data


class MeView(APIView):
    throttle_classes = [CredentialRateThrottle]

    @extend_schema(responses=serializers.MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(_me(_user(request)))


class OrganizationListView(APIView):
    """Your organizations; create a new one (you become its owner)."""

    throttle_classes = [CredentialRateThrottle]

    @extend_schema(responses=serializers.MyMembershipSerializer(many=True))
    def get(self, request: Request) -> Response:
        memberships = selectors.memberships_of_user(_user(request))
        payload = serializers.MyMembershipSerializer(memberships, many=True)  # type: ignore[arg-type]
        return Response(payload.data)

    @extend_schema(
        request=serializers.OrganizationCreateSerializer,
        responses={201: serializers.OrganizationSerializer},
    )
    def post(self, request: Request) -> Response:
        owner = _user(request)
        payload = serializers.OrganizationCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        actor = Actor(
            user=owner,
            role=Role.OWNER,
            ip_address=request.META.get("REMOTE_ADDR"),
            request_id=_request_id(request),
        )
        organization = services.create_organization(
            owner=owner, actor=actor, **payload.validated_data
        )
        return Response(
            serializers.OrganizationSerializer(organization).data, status=status.HTTP_201_CREATED
        )


class AcceptInvitationView(APIView):
    throttle_classes = [AnonymousRateThrottle, CredentialRateThrottle]

    @extend_schema(
        request=serializers.AcceptInvitationSerializer,
        responses={201: serializers.MyMembershipSerializer},
    )
    def post(self, request: Request) -> Response:
        payload = serializers.AcceptInvitationSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        membership = services.accept_invitation(
            payload.validated_data["token"],
            _user(request),
            ip_address=request.META.get("REMOTE_ADDR"),
            request_id=_request_id(request),
        )
        return Response(
            serializers.MyMembershipSerializer(membership).data, status=status.HTTP_201_CREATED
        )


class OrganizationDetailView(OrganizationAPIView):
    permission_map = {"get": P.ORGANIZATION_VIEW, "patch": P.ORGANIZATION_MANAGE}

    @extend_schema(responses=serializers.OrganizationSerializer)
    def get(self, request: Request, org: str) -> Response:
        return Response(serializers.OrganizationSerializer(self.organization).data)

    @extend_schema(
        request=serializers.OrganizationSerializer, responses=serializers.OrganizationSerializer
    )
    def patch(self, request: Request, org: str) -> Response:
        payload = serializers.OrganizationSerializer(
            self.organization, data=request.data, partial=True
        )
        payload.is_valid(raise_exception=True)
        organization = services.update_organization(
            self.actor, self.organization, **payload.validated_data
        )
        return Response(serializers.OrganizationSerializer(organization).data)


class MemberViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationViewSet,
):
    model = Membership
    serializer_class = serializers.MemberSerializer
    filterset_class = filters.MemberFilter
    ordering_fields = ["created_at", "role"]
    http_method_names = ["get", "patch", "delete", "head", "options"]
    permission_map = {
        "list": P.MEMBERS_VIEW,
        "retrieve": P.MEMBERS_VIEW,
        "partial_update": P.MEMBERS_MANAGE,
        "destroy": P.MEMBERS_MANAGE,
    }

    def scope_queryset(self, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        return queryset.select_related("user")

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.change_member_role(
            self.actor,
            serializer.instance,
            serializer.validated_data.get("role", serializer.instance.role),
        )

    def perform_destroy(self, instance: Membership) -> None:
        services.remove_member(self.actor, instance)


class InvitationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    OrganizationViewSet,
):
    model = Invitation
    serializer_class = serializers.InvitationSerializer
    filterset_class = filters.InvitationFilter
    ordering_fields = ["created_at", "expires_at"]
    permission_map = {
        "list": P.MEMBERS_VIEW,
        "retrieve": P.MEMBERS_VIEW,
        "create": P.MEMBERS_MANAGE,
        "revoke": P.MEMBERS_MANAGE,
    }

    @extend_schema(responses={201: serializers.InvitationCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        invitation, token = services.invite_member(
            self.actor, self.organization, **payload.validated_data
        )
        invitation.token = token  # type: ignore[attr-defined]
        body = serializers.InvitationCreatedSerializer(invitation).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=serializers.InvitationSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        invitation = services.revoke_invitation(self.actor, self.get_object())
        return Response(self.get_serializer(invitation).data)


class ApiKeyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    OrganizationViewSet,
):
    model = ApiKey
    serializer_class = serializers.ApiKeySerializer
    filterset_class = filters.ApiKeyFilter
    ordering_fields = ["created_at", "last_used_at", "name"]
    permission_map = {
        "list": P.API_KEYS_MANAGE,
        "retrieve": P.API_KEYS_MANAGE,
        "create": P.API_KEYS_MANAGE,
        "revoke": P.API_KEYS_MANAGE,
    }

    @extend_schema(responses={201: serializers.ApiKeyCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        key, token = services.create_api_key(
            self.actor, self.organization, **payload.validated_data
        )
        key.token = token  # type: ignore[attr-defined]
        body = serializers.ApiKeyCreatedSerializer(key).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=serializers.ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = services.revoke_api_key(self.actor, self.get_object())
        return Response(self.get_serializer(key).data)


class AuditEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationViewSet):
    model = AuditEntry
    serializer_class = serializers.AuditEntrySerializer
    filterset_class = filters.AuditFilter
    lookup_value_regex = "[0-9]+"
    ordering_fields = ["created_at"]
    permission_map = {"list": P.AUDIT_VIEW, "retrieve": P.AUDIT_VIEW}
