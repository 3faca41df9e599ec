from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from tenants.models import Operation, Organization


class OrganizationRequestSerializer(serializers.Serializer):
    client_name = serializers.CharField(max_length=200)
    admin_email = serializers.EmailField()
    plan = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class LifecycleActionSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class OperationSerializer(serializers.ModelSerializer):
    organization_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Operation
        fields = (
            "id",
            "organization_id",
            "step",
            "attempt",
            "from_status",
            "to_status",
            "outcome",
            "started_at",
            "finished_at",
            "duration_ms",
            "error",
            "message",
            "job_id",
        )
        read_only_fields = fields


class OrganizationSerializer(serializers.ModelSerializer):
    status_url = serializers.SerializerMethodField()
    plan = serializers.CharField(source="plan_code", read_only=True)
    client_name = serializers.CharField(source="name", read_only=True)

    class Meta:
        model = Organization
        fields: tuple[str, ...] = (
            "id",
            "client_name",
            "slug",
            "schema_name",
            "admin_email",
            "plan",
            "status",
            "status_url",
            "last_error",
            "created_at",
            "updated_at",
            "status_changed_at",
            "activated_at",
            "deleted_at",
            "purge_after",
        )
        read_only_fields = fields

    def get_status_url(self, obj: Organization) -> str:
        path = reverse("api:organization-detail", kwargs={"organization_id": obj.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class OrganizationDetailSerializer(OrganizationSerializer):
    operations = serializers.SerializerMethodField()

    class Meta(OrganizationSerializer.Meta):
        fields: tuple[str, ...] = (*OrganizationSerializer.Meta.fields, "operations")
        read_only_fields = fields

    def get_operations(self, obj: Organization) -> list[dict[str, Any]]:
        rows = obj.operations.order_by("started_at", "id")
        return OperationSerializer(rows, many=True).data  # type: ignore[return-value]


# The error body, as a raw OpenAPI schema (a serializer cannot have a field called "fields").
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "description": "Stable, machine-readable"},
        "message": {"type": "string", "description": "A sentence for people"},
        "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
    "required": ["code", "message"],
}
