from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from ghostcrm.organizations.models import Organization
from tenants.models import Operation

# The seed's triggerClientProvisioning({clientId, ...}) passes the caller's own id. The API does not take it:
# the control plane assigns the organisation's UUID (returned as ``id``), and a caller that wants its retries
# to be safe sends its own id as the Idempotency-Key header instead. Sending an id is refused, never ignored.
CALLER_ID_FIELDS = ("id", "client_id", "clientId", "organization_id")
CALLER_ID_MESSAGE = (
    "The organisation's id is assigned by the server and returned in the response; to make a retried request "
    "safe, send your own id as the Idempotency-Key header."
)


class OrganizationRequestSerializer(serializers.Serializer):
    client_name = serializers.CharField(max_length=200)
    admin_email = serializers.EmailField()
    plan = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        default="",
        help_text="Code of an active billing plan; empty for none. Another code is a 400 naming the active ones.",
    )

    def to_internal_value(self, data: Any) -> Any:
        # Unknown fields are refused rather than ignored: a typo ("admin_mail") or a caller-supplied id would
        # otherwise be dropped silently and the caller would believe it had been used.
        if isinstance(data, dict):
            errors = {
                name: [CALLER_ID_MESSAGE if name in CALLER_ID_FIELDS else "Unknown field."]
                for name in data
                if name not in self.fields
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


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


class ErrorSerializer(serializers.Serializer):
    """Every error: a stable code and a sentence; ``fields`` for invalid input, ``retry_after`` for 429."""

    code = serializers.CharField(help_text="Stable, machine-readable")
    message = serializers.CharField(help_text="A sentence for people")
    retry_after = serializers.IntegerField(required=False, help_text="429 only: seconds to wait")


# A class body cannot declare a field called "fields" (it would shadow Serializer.fields), so add it here.
ErrorSerializer._declared_fields["fields"] = serializers.DictField(
    child=serializers.ListField(child=serializers.CharField()),
    required=False,
    help_text="Per-field messages (400)",
)
ERROR_SCHEMA = ErrorSerializer
