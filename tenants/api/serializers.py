from __future__ import annotations

import re
from typing import Any

from django.db import DatabaseError
from django.urls import reverse
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from rest_framework import serializers

from ghostcrm.organizations.models import Organization
from tenants import selectors
from tenants.models import Operation

# The seed's triggerClientProvisioning({clientId, ...}) passes the caller's own id. The API does not take it:
# the control plane assigns the organisation's UUID (returned as ``id``), and a caller that wants its retries
# to be safe sends its own id as the Idempotency-Key header instead. Sending an id is refused, never ignored.
CALLER_ID_FIELDS = ("id", "client_id", "clientId", "organization_id")
CALLER_ID_MESSAGE = (
    "The organisation's id is assigned by the server and returned in the response; to make a retried request "
    "safe, send your own id as the Idempotency-Key header."
)


# What the service accepts as a client's name, as a pattern the OpenAPI schema can state: it starts with a
# letter and two letters or digits (so its schema name is valid and never starts with "pg_"), then anything
# but control characters. (A name that is a PostgreSQL reserved word, e.g. "Table", is still a 400.)
CLIENT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9]{2}[^\x00-\x1f\x7f]*$"
# One character or more: drf-spectacular declares a field that allows "" as oneOf [pattern, maxLength 0], and
# "" must match only the second branch.
NO_NUL_PATTERN = r"^[^\x00]+$"
MAX_CLIENT_NAME = 200


class StringOnly:
    """A string field that takes strings only: DRF's CharField turns 12 into "12", which the schema's type does not."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")  # type: ignore[attr-defined]
        return super().to_internal_value(data)  # type: ignore[misc,no-any-return]


class StrictCharField(StringOnly, serializers.CharField):
    pass


class StrictRegexField(StringOnly, serializers.RegexField):
    pass


class StrictEmailField(StringOnly, serializers.EmailField):
    pass


class PlanCodeField(StrictCharField):
    """A billing plan's code; the schema lists the active plans when it is generated (they live in the database)."""


class PlanCodeFieldSchema(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    target_class = PlanCodeField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = {"type": "string", "maxLength": 64, "description": self.target.help_text or ""}
        try:
            codes = [code for code, _ in selectors.active_plan_choices()]
        except DatabaseError:  # a schema generated without a database (manage.py spectacular) lists no codes
            return schema
        return {**schema, "enum": ["", *codes]}


# Unknown fields are refused rather than ignored: a typo ("admin_mail") or a caller-supplied id would otherwise
# be dropped silently and the caller would believe it had been used. (A comment, not a docstring: the schema
# would show a docstring as every subclass's description.)
class StrictSerializer(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            errors = {
                name: [CALLER_ID_MESSAGE if name in CALLER_ID_FIELDS else "Unknown field."]
                for name in data
                if name not in self.fields
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictSerializerSchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """The schema says what StrictSerializer does: no property beyond those declared."""

    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        return schema


class OrganizationRequestSerializer(StrictSerializer):
    client_name = StrictRegexField(
        CLIENT_NAME_PATTERN,
        min_length=3,
        max_length=MAX_CLIENT_NAME,
        error_messages={
            "invalid": "Start the name with a letter and two more letters or digits (A-Z, 0-9), and use no control "
            "characters."
        },
        help_text="The client's name; its slug and schema name are derived from it.",
    )
    admin_email = StrictEmailField(max_length=254)
    plan = PlanCodeField(
        max_length=64,
        required=False,
        allow_blank=True,
        default="",
        help_text="Code of an active billing plan; empty for none. Another code is a 400 naming the active ones.",
    )


class LifecycleActionSerializer(StrictSerializer):
    reason = StrictRegexField(
        NO_NUL_PATTERN, max_length=1000, required=False, allow_blank=True, default="",
        help_text="Why (kept in the audit log and the operation); a default sentence when empty.",
    )  # fmt: skip


class StrictIntegerField(serializers.IntegerField):
    """Digits only: DRF's IntegerField also takes "1.0" and " 1", which the schema's integer type does not."""

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, int) and not re.fullmatch(r"-?[0-9]{1,18}", str(data)):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class OrganizationListQuerySerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=Organization.Status.choices, required=False,
                                     help_text="Only organisations in this status")  # fmt: skip
    limit = StrictIntegerField(min_value=1, max_value=1000, required=False, help_text="Page size (default 100)")
    offset = StrictIntegerField(min_value=0, max_value=2**31 - 1, required=False, help_text="Rows to skip")


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
    retry_after = serializers.IntegerField(required=False, help_text="429 and 503: seconds to wait (as Retry-After)")
    database = serializers.CharField(required=False, help_text="503 database_unavailable: which database")
    limit = serializers.IntegerField(required=False, help_text="413 body_too_large: the limit in bytes")
    organization = OrganizationSerializer(
        required=False, help_text="503 queue_unavailable after a write: the organisation as recorded"
    )


# A class body cannot declare a field called "fields" (it would shadow Serializer.fields), so add it here.
ErrorSerializer._declared_fields["fields"] = serializers.DictField(
    child=serializers.ListField(child=serializers.CharField()),
    required=False,
    help_text="Per-field messages (400)",
)
ERROR_SCHEMA = ErrorSerializer
