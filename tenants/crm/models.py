"""Unmanaged, read-only mirrors of the client schema templates' main tables, for support views.

The SQL templates in ``migrations_sql/client-provisioning`` are the single source of truth: these models
never create, alter or write a table (``managed = False``, no migrations; ``save``/``delete`` refuse).
They live in the tenant database (``database_alias``) and are read inside ``tenants.db.tenant_schema``.
The control plane reads as the database owner, which bypasses the schema's row-level security: these
mirrors are for operators, never for end users. ``crm_users.password_hash`` is deliberately not mirrored.
``tests/templates/test_mirrors.py`` checks every field against the applied templates.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models

from ghostcrm.core.errors import PermissionDenied

READ_ONLY = "Tenant CRM mirrors are read-only; change tenant data through the CRM."


class ReadOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise PermissionDenied(READ_ONLY)

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionDenied(READ_ONLY)

    def bulk_create(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionDenied(READ_ONLY)

    def bulk_update(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionDenied(READ_ONLY)


class TenantMirror(models.Model):
    database_alias: ClassVar[str] = settings.TENANT_DB_ALIAS

    objects = ReadOnlyQuerySet.as_manager()

    class Meta:
        abstract = True
        managed = False

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise PermissionDenied(READ_ONLY)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionDenied(READ_ONLY)


class CrmUser(TenantMirror):
    id = models.UUIDField(primary_key=True)
    email = models.TextField()
    full_name = models.TextField()
    role = models.TextField()
    is_active = models.BooleanField()
    title = models.TextField()
    phone = models.TextField()
    time_zone = models.TextField()
    last_login_at = models.DateTimeField(null=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta(TenantMirror.Meta):
        db_table = "crm_users"
        verbose_name = "CRM user"

    def __str__(self) -> str:
        return self.email


class Team(TenantMirror):
    id = models.UUIDField(primary_key=True)
    name = models.TextField()
    description = models.TextField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta(TenantMirror.Meta):
        db_table = "teams"

    def __str__(self) -> str:
        return self.name


class TeamMember(TenantMirror):
    pk = models.CompositePrimaryKey("team_id", "user_id")
    team = models.ForeignKey(Team, on_delete=models.DO_NOTHING, db_constraint=False, related_name="memberships")
    user = models.ForeignKey(CrmUser, on_delete=models.DO_NOTHING, db_constraint=False, related_name="memberships")
    is_lead = models.BooleanField()
    created_at = models.DateTimeField()

    class Meta(TenantMirror.Meta):
        db_table = "team_members"

    def __str__(self) -> str:
        return f"{self.user_id} in {self.team_id}"


class OwnedRecord(TenantMirror):
    id = models.UUIDField(primary_key=True)
    owner = models.ForeignKey(CrmUser, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    is_private = models.BooleanField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta(TenantMirror.Meta):
        abstract = True


class Company(OwnedRecord):
    name = models.TextField()
    domain = models.TextField(null=True)
    industry = models.TextField()
    employee_count = models.IntegerField(null=True)
    annual_revenue = models.DecimalField(max_digits=18, decimal_places=2, null=True)
    revenue_currency = models.TextField(null=True)
    lifecycle_stage = models.TextField()
    country_code = models.TextField(null=True)
    parent_company = models.ForeignKey(
        "self", on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="subsidiaries"
    )
    deleted_at = models.DateTimeField(null=True)

    class Meta(OwnedRecord.Meta):
        db_table = "companies"
        verbose_name_plural = "companies"

    def __str__(self) -> str:
        return self.name


class Contact(OwnedRecord):
    company = models.ForeignKey(
        Company, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="contacts"
    )
    first_name = models.TextField()
    last_name = models.TextField()
    email = models.TextField(null=True)
    phone = models.TextField()
    job_title = models.TextField()
    lifecycle_stage = models.TextField()
    do_not_contact = models.BooleanField()
    deleted_at = models.DateTimeField(null=True)

    class Meta(OwnedRecord.Meta):
        db_table = "contacts"

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or (self.email or str(self.id))


class Lead(OwnedRecord):
    first_name = models.TextField()
    last_name = models.TextField()
    email = models.TextField(null=True)
    company_name = models.TextField()
    source = models.TextField()
    status = models.TextField()
    score = models.SmallIntegerField()
    converted_at = models.DateTimeField(null=True)
    deleted_at = models.DateTimeField(null=True)

    class Meta(OwnedRecord.Meta):
        db_table = "leads"

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.company_name


class Pipeline(TenantMirror):
    id = models.UUIDField(primary_key=True)
    name = models.TextField()
    is_default = models.BooleanField()
    is_active = models.BooleanField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta(TenantMirror.Meta):
        db_table = "pipelines"

    def __str__(self) -> str:
        return self.name


class PipelineStage(TenantMirror):
    id = models.UUIDField(primary_key=True)
    pipeline = models.ForeignKey(Pipeline, on_delete=models.DO_NOTHING, db_constraint=False, related_name="stages")
    name = models.TextField()
    position = models.IntegerField()
    probability = models.SmallIntegerField()
    stage_type = models.TextField()

    class Meta(TenantMirror.Meta):
        db_table = "pipeline_stages"
        ordering = ("pipeline_id", "position")

    def __str__(self) -> str:
        return self.name


class Deal(OwnedRecord):
    name = models.TextField()
    pipeline = models.ForeignKey(Pipeline, on_delete=models.DO_NOTHING, db_constraint=False, related_name="deals")
    stage = models.ForeignKey(PipelineStage, on_delete=models.DO_NOTHING, db_constraint=False, related_name="deals")
    amount = models.DecimalField(max_digits=18, decimal_places=2)
    currency = models.TextField()
    company = models.ForeignKey(Company, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")
    expected_close_date = models.DateField(null=True)
    stage_changed_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True)
    deleted_at = models.DateTimeField(null=True)

    class Meta(OwnedRecord.Meta):
        db_table = "deals"

    def __str__(self) -> str:
        return self.name


class Activity(OwnedRecord):
    activity_type = models.TextField()
    status = models.TextField()
    subject = models.TextField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True)
    company = models.ForeignKey(Company, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")
    lead = models.ForeignKey(Lead, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")
    deal = models.ForeignKey(Deal, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")

    class Meta(OwnedRecord.Meta):
        db_table = "activities"
        verbose_name_plural = "activities"

    def __str__(self) -> str:
        return f"{self.activity_type}: {self.subject}"


class Task(OwnedRecord):
    title = models.TextField()
    priority = models.TextField()
    status = models.TextField()
    due_at = models.DateTimeField(null=True)
    completed_at = models.DateTimeField(null=True)
    deal = models.ForeignKey(Deal, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")

    class Meta(OwnedRecord.Meta):
        db_table = "tasks"

    def __str__(self) -> str:
        return self.title


class Note(OwnedRecord):
    body = models.TextField()
    deal = models.ForeignKey(Deal, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")

    class Meta(OwnedRecord.Meta):
        db_table = "notes"

    def __str__(self) -> str:
        return self.body[:60]


class ActivityLogEntry(TenantMirror):
    id = models.BigIntegerField(primary_key=True)
    occurred_at = models.DateTimeField()
    actor_id = models.UUIDField(null=True)
    action = models.TextField()
    table_name = models.TextField(null=True)
    record_id = models.UUIDField(null=True)
    changes = models.JSONField()

    class Meta(TenantMirror.Meta):
        db_table = "activity_log"
        ordering = ("-id",)
        verbose_name_plural = "activity log"

    def __str__(self) -> str:
        return f"{self.action} {self.table_name or ''} {self.record_id or ''}".strip()


class Product(TenantMirror):
    id = models.UUIDField(primary_key=True)
    code = models.TextField()
    name = models.TextField()
    product_type = models.TextField()
    is_active = models.BooleanField()

    class Meta(TenantMirror.Meta):
        db_table = "products"

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class ProductVariant(TenantMirror):
    id = models.UUIDField(primary_key=True)
    product = models.ForeignKey(Product, on_delete=models.DO_NOTHING, db_constraint=False, related_name="variants")
    sku = models.TextField()
    name = models.TextField()
    cost_price = models.DecimalField(max_digits=18, decimal_places=4)
    cost_currency = models.TextField()
    is_active = models.BooleanField()

    class Meta(TenantMirror.Meta):
        db_table = "product_variants"

    def __str__(self) -> str:
        return self.sku


class Warehouse(TenantMirror):
    id = models.UUIDField(primary_key=True)
    code = models.TextField()
    name = models.TextField()
    is_active = models.BooleanField()

    class Meta(TenantMirror.Meta):
        db_table = "warehouses"

    def __str__(self) -> str:
        return self.code


class StockLevel(TenantMirror):
    pk = models.CompositePrimaryKey("variant_id", "warehouse_id")
    variant = models.ForeignKey(ProductVariant, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    warehouse = models.ForeignKey(Warehouse, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    on_hand = models.DecimalField(max_digits=18, decimal_places=3)
    reserved = models.DecimalField(max_digits=18, decimal_places=3)
    available = models.DecimalField(max_digits=18, decimal_places=3)
    updated_at = models.DateTimeField()

    class Meta(TenantMirror.Meta):
        db_table = "stock_levels"

    def __str__(self) -> str:
        return f"{self.variant_id} @ {self.warehouse_id}: {self.on_hand}"


class StockMovement(TenantMirror):
    id = models.BigIntegerField(primary_key=True)
    variant = models.ForeignKey(ProductVariant, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    warehouse = models.ForeignKey(Warehouse, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    kind = models.TextField()
    quantity = models.DecimalField(max_digits=18, decimal_places=3)
    balance_after = models.DecimalField(max_digits=18, decimal_places=3)
    moved_by = models.ForeignKey(
        CrmUser, on_delete=models.DO_NOTHING, db_constraint=False, db_column="moved_by", related_name="+"
    )
    moved_at = models.DateTimeField()

    class Meta(TenantMirror.Meta):
        db_table = "stock_movements"
        ordering = ("id",)

    def __str__(self) -> str:
        return f"#{self.id} {self.kind} {self.quantity}"


class Quote(OwnedRecord):
    number = models.TextField()
    deal = models.ForeignKey(Deal, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")
    currency = models.TextField()
    status = models.TextField()
    valid_until = models.DateField(null=True)

    class Meta(OwnedRecord.Meta):
        db_table = "quotes"

    def __str__(self) -> str:
        return self.number


class SalesOrder(OwnedRecord):
    number = models.TextField()
    deal = models.ForeignKey(Deal, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")
    quote = models.ForeignKey(Quote, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")
    currency = models.TextField()
    status = models.TextField()

    class Meta(OwnedRecord.Meta):
        db_table = "sales_orders"

    def __str__(self) -> str:
        return self.number
