"""Main-database models and queries stay within what mssql-django creates and runs like PostgreSQL does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import NotSupportedError, models
from django.db.models import Q
from django.db.models.functions import Lower
from django.test.utils import isolate_apps

from billing.models import Subscription
from ghostcrm.audit.models import AuditChainHead, AuditEvent
from ghostcrm.mssql.offline import OfflineDatabaseWrapper
from ghostcrm.organizations.models import Organization
from tests.mssql import portability

ROOT = Path(__file__).resolve().parents[2]


class InTransaction(OfflineDatabaseWrapper):
    """Compiles querysets as mssql-django would inside a transaction (select_for_update needs one)."""

    def get_autocommit(self) -> bool:
        return False


def mssql_sql(queryset: Any) -> str:
    sql, _params = queryset.query.get_compiler(connection=InTransaction()).as_sql()
    return str(sql)


# --- models ---------------------------------------------------------------------------------------------


def test_every_main_database_model_is_portable() -> None:
    found = portability.main_database_models()
    labels = {model._meta.label for model in found}
    # Django's, third-party and our own apps routed to `default`; the tenant registry is not among them.
    assert {"auth.Permission", "sessions.Session", "axes.AccessAttempt", "audit.AuditEvent"} <= labels
    assert {"organizations.Organization", "accounts.User", "core.SystemSetting"} <= labels
    assert "tenants.Tenant" not in labels and "tenants.Domain" not in labels
    assert portability.model_problems(found) == []


@isolate_apps("ghostcrm.audit")
def test_model_check_names_what_sql_server_cannot_create_alike() -> None:
    class Bad(models.Model):
        tags = ArrayField(models.CharField(max_length=20), default=list)
        ref = models.CharField(max_length=20, null=True)
        body = models.TextField(db_index=True)
        code = models.CharField(max_length=1000, unique=True)
        name = models.CharField(max_length=50, db_collation="und-x-icu")
        state = models.CharField(max_length=10)

        class Meta:
            app_label = "audit"
            indexes = [
                models.Index(Lower("name"), name="bad_lower_idx"),
                GinIndex(fields=["tags"], name="bad_gin_idx"),
                models.Index(fields=["state"], name="bad_or_idx", condition=Q(state="a") | Q(state="b")),
            ]
            constraints = [
                models.UniqueConstraint(fields=["ref"], name="bad_ref_unique"),
                models.UniqueConstraint(fields=["state"], name="bad_state_nd", nulls_distinct=False),
                models.UniqueConstraint(
                    fields=["state"], name="bad_state_deferred", deferrable=models.Deferrable.DEFERRED
                ),
            ]

        def __str__(self) -> str:
            return self.state

    problems = "\n".join(portability.model_problems([Bad]))
    expected = [
        "audit.Bad.tags: ArrayField exists only on PostgreSQL",
        "audit.Bad.body (db_index): body is nvarchar(max)/varbinary(max) on SQL Server",
        "audit.Bad.code (unique): the index key is 2000 bytes on SQL Server (limit 1700)",
        "audit.Bad.name: db_collation='und-x-icu'",
        "audit.Bad index 'bad_lower_idx': mssql-django does not create expression indexes",
        "audit.Bad index 'bad_gin_idx': GinIndex exists only on PostgreSQL",
        "audit.Bad index 'bad_or_idx': the condition uses OR or NOT",
        "audit.Bad constraint 'bad_ref_unique': ref can be NULL and SQL Server's unique constraint allows only one "
        "NULL (PostgreSQL and SQLite allow many); add condition=Q(ref__isnull=False)",
        "audit.Bad constraint 'bad_state_nd': nulls_distinct is not supported by mssql-django",
        "audit.Bad constraint 'bad_state_deferred': SQL Server has no deferrable constraints",
    ]
    for message in expected:
        assert message in problems
    assert len(problems.splitlines()) == len(expected), problems


@isolate_apps("ghostcrm.audit")
def test_model_check_accepts_the_portable_spellings() -> None:
    class Good(models.Model):
        ref = models.CharField(max_length=20, null=True, unique=True)  # mssql-django: filtered unique index
        other = models.CharField(max_length=20, null=True)
        body = models.TextField()
        data = models.JSONField(null=True)
        code = models.CharField(max_length=800, unique=True)

        class Meta:
            app_label = "audit"
            constraints = [
                models.UniqueConstraint(fields=["other"], name="good_other_unique", condition=Q(other__isnull=False))
            ]
            indexes = [models.Index(fields=["code", "other"], name="good_idx", condition=Q(other__isnull=False))]

        def __str__(self) -> str:
            return self.code

    assert portability.model_problems([Good]) == []


# --- JSON lookups ---------------------------------------------------------------------------------------


def test_project_source_has_no_json_lookup_or_lock_option_sql_server_lacks() -> None:
    problems = portability.project_source_problems(ROOT)
    assert problems == [], "\n".join(problems)


def test_source_scan_catches_json_lookups_and_lock_options() -> None:
    source = """
from django.db.models import Q
from django.db.models.fields.json import KT
def bad(org_id):
    AuditEvent.objects.filter(after__contains={"a": 1})
    AuditEvent.objects.exclude(Q(before__has_key="token"))
    AuditEvent.objects.filter(**{"after__reason__contains": "x"})
    AuditEvent.objects.filter(after__reason="expired")
    IntegrationPreference.objects.order_by("-settings__colour")
    Organization.objects.filter(integration_preferences__settings__plan="pro")
    AuditEvent.objects.select_for_update(of=("self",)).get(pk=1)
def fine():
    AuditEvent.objects.filter(after__isnull=True, action="x", target_id__contains="1")
    AuditEvent.objects.select_for_update(skip_locked=True).first()
    AuditEvent.objects.filter(after__contains={"a": 1})  # sqlserver-exempt: reviewed
    AuditEvent.objects.filter(after__contains={"a": 1})  # sqlserver-exempt:
"""
    models_ = portability.main_database_models()
    app = portability.source_problems(source, "app.py", models_)
    lines = sorted(int(p.split(":")[1]) for p in app)
    assert lines == [3, 5, 6, 7, 8, 9, 10, 11, 16], "\n".join(app)  # an exemption needs a reason
    assert any("select_for_update(of=…) is refused by mssql-django" in p for p in app)
    assert any("order_by('settings__colour') looks inside a JSONField ('colour')" in p for p in app)
    # Tests may use the key lookups mssql-django runs, not the ones it refuses.
    tests = portability.source_problems(source, "tests/x.py", models_, application_code=False)
    assert sorted(int(p.split(":")[1]) for p in tests) == [5, 6, 7, 11, 16], "\n".join(tests)


@pytest.mark.parametrize(
    ("lookup", "supported"),
    [
        ({"after__reason": "x"}, True),
        ({"after__reason__in": ["x", "y"]}, True),
        ({"after__isnull": True}, True),
        ({"after__contains": {"a": 1}}, False),
        ({"after__contained_by": {"a": 1}}, False),
        ({"after__reason__contains": "x"}, False),
    ],
)
def test_json_rule_matches_what_mssql_django_compiles(lookup: dict[str, Any], supported: bool) -> None:
    (path,) = lookup
    json_part = portability.json_lookup_of(path, {"after"})
    assert (json_part is None or not portability.json_lookup_unsupported(json_part)) is supported
    queryset = AuditEvent.objects.filter(**lookup)
    if supported:
        sql = mssql_sql(queryset)
        assert "JSON_VALUE([audit_auditevent].[after]" in sql or "[after] IS NULL" in sql
    else:
        with pytest.raises(NotSupportedError):
            mssql_sql(queryset)


def test_has_key_is_refused_because_sql_server_writes_it_as_json_value() -> None:
    # Before SQL Server 2022 has_key is JSON_VALUE(...) IS NOT NULL: false for a key holding null or an object.
    assert "JSON_VALUE([audit_auditevent].[after], '$.\"k\"') IS NOT NULL" in mssql_sql(
        AuditEvent.objects.filter(after__has_key="k")  # sqlserver-exempt: shows what SQL Server receives
    )
    assert portability.json_lookup_unsupported("has_key")


# --- locking --------------------------------------------------------------------------------------------


def test_lock_code_paths_become_sql_server_lock_hints() -> None:
    """The row locks the audit chain, document numbering and provisioning rely on, as SQL Server gets them."""
    chain_head = mssql_sql(AuditChainHead.objects.select_for_update().filter(pk=1))
    assert "FROM [audit_auditchainhead] WITH (ROWLOCK, UPDLOCK) WHERE" in chain_head
    organization = mssql_sql(Organization.objects.select_for_update().filter(pk="0" * 32))
    assert "FROM [tenants_organization] WITH (ROWLOCK, UPDLOCK) WHERE" in organization
    # With a join the hint stays on the locked model's table: the joined row is not locked (unlike FOR UPDATE).
    subscription = mssql_sql(Subscription.objects.select_for_update().select_related("plan").filter(pk=1))
    assert "FROM [billing_subscription] WITH (ROWLOCK, UPDLOCK) INNER JOIN [billing_plan] ON" in subscription
    assert subscription.count("WITH (") == 1
    assert "WITH (ROWLOCK, UPDLOCK, READPAST)" in mssql_sql(AuditEvent.objects.select_for_update(skip_locked=True))
    assert "WITH (NOWAIT, ROWLOCK, UPDLOCK)" in mssql_sql(AuditEvent.objects.select_for_update(nowait=True))
    with pytest.raises(NotSupportedError, match="FOR UPDATE OF"):
        mssql_sql(AuditEvent.objects.select_for_update(of=("self",)))  # sqlserver-exempt: proves the refusal
