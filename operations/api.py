"""REST API of the operations area: list backups, restore a client (service-role keys, as the tenants API)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response

from ghostcrm.core.errors import ValidationError
from operations import selectors
from operations.services import backups, restore
from tenants.api.views import AUTH_ERRORS, CONFLICT, INVALID, NOT_FOUND, RATE_LIMIT_HEADERS, READ, ServiceKeyAPIView
from tenants.models import ServiceKey


class BackupSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    slug = serializers.CharField()
    server = serializers.CharField()
    size_bytes = serializers.IntegerField(allow_null=True)
    sha256 = serializers.CharField()
    key_id = serializers.CharField()
    outcome = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    pruned_at = serializers.DateTimeField(allow_null=True)


class RestoreRequestSerializer(serializers.Serializer):
    slug = serializers.SlugField(help_text="The client whose backup is restored.")
    backup_id = serializers.IntegerField(required=False, help_text="Default: the client's newest usable backup.")
    # Empty means "not given", as when the field is left out (the schema says so: schemathesis sends "").
    as_slug = serializers.SlugField(
        required=False, default="", allow_blank=True, help_text="Restore as a new client (a copy); empty: undelete."
    )
    to_server = serializers.CharField(
        required=False, default="", allow_blank=True, help_text="The tenant server to restore to; empty: primary."
    )
    suspended = serializers.BooleanField(required=False, default=False, help_text="Undelete as suspended.")


class RestoreResultSerializer(serializers.Serializer):
    organization = serializers.UUIDField()
    slug = serializers.CharField()
    schema = serializers.CharField()
    status = serializers.CharField()
    backup = serializers.IntegerField()
    undeleted = serializers.BooleanField()
    duration_ms = serializers.IntegerField()


class BackupListView(ServiceKeyAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(
        summary="Backups, newest first (filter with ?slug=)",
        parameters=RATE_LIMIT_HEADERS,
        responses={200: BackupSerializer(many=True), **AUTH_ERRORS},
    )
    def get(self, request: Request) -> Response:
        rows = selectors.backups_list(slug=request.query_params.get("slug", ""))[:500]
        return Response(BackupSerializer([backups.backup_as_dict(b) for b in rows], many=True).data)


class RestoreView(ServiceKeyAPIView):
    required_scopes = {"POST": ServiceKey.Scope.ORGANIZATIONS_LIFECYCLE}

    @extend_schema(
        summary="Restore a client backup: as a new client (as_slug), or over the deleted client (undelete)",
        request=RestoreRequestSerializer,
        parameters=RATE_LIMIT_HEADERS,
        responses={
            201: RestoreResultSerializer,
            200: RestoreResultSerializer,
            **INVALID,
            **NOT_FOUND,
            **CONFLICT,
            **AUTH_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = RestoreRequestSerializer(data=request.data)
        if not data.is_valid():
            raise ValidationError("The restore request is invalid.", extra={"fields": data.errors})
        values = data.validated_data
        result = restore.organization_restore(
            slug=values["slug"],
            backup_id=values.get("backup_id"),
            as_slug=values["as_slug"],
            to_server=values["to_server"],
            suspended=values["suspended"],
            actor=self.actor(request),
        )
        return Response(result.as_dict(), status=http.HTTP_200_OK if result.undeleted else http.HTTP_201_CREATED)
