"""Usage readings: seats (active CRM users) and contacts (not deleted) counted in each tenant schema."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from psycopg import sql

from billing import services
from billing.models import UsageReading
from ghostcrm.core.errors import Conflict
from tests.billing.factories import ACTOR, T0, make_organization

pytestmark = pytest.mark.django_db(databases=["default", "tenants"])


def create_tenant_tables(schema: str, *, users: list[bool], contacts: list[bool]) -> None:
    """The two template tables usage reads (columns as in the 001 template's contract), with rows."""
    with connections["tenants"].cursor() as cursor:
        ident = sql.Identifier(schema)
        raw = cursor.connection
        cursor.execute(sql.SQL("CREATE SCHEMA {}").format(ident).as_string(raw))
        cursor.execute(
            sql.SQL(
                "CREATE TABLE {}.crm_users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text NOT NULL UNIQUE,"
                " full_name text NOT NULL DEFAULT '', role text NOT NULL, is_active boolean NOT NULL DEFAULT true)"
            )
            .format(ident)
            .as_string(raw)
        )
        cursor.execute(
            sql.SQL(
                "CREATE TABLE {}.contacts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text,"
                " deleted_at timestamptz NULL)"
            )
            .format(ident)
            .as_string(raw)
        )
        for n, active in enumerate(users):
            cursor.execute(
                sql.SQL("INSERT INTO {}.crm_users (email, role, is_active) VALUES (%s, 'member', %s)")
                .format(ident)
                .as_string(raw),
                [f"user{n}@tenant.example", active],
            )
        for deleted in contacts:
            cursor.execute(
                sql.SQL("INSERT INTO {}.contacts (name, deleted_at) VALUES ('x', %s)").format(ident).as_string(raw),
                [T0 if deleted else None],
            )


def test_a_reading_counts_active_users_and_live_contacts(db: Any) -> None:
    organization = make_organization()
    create_tenant_tables(organization.schema_name, users=[True, True, False], contacts=[False, False, False, True])
    reading = services.usage_reading_take(organization_id=organization.pk, at=T0)
    assert (reading.seats, reading.contacts, reading.taken_at) == (2, 3, T0)


def test_the_run_reads_every_active_tenant_and_reports_the_broken_one(db: Any) -> None:
    broken = make_organization(name="Not provisioned")  # active, but its schema does not exist
    good = make_organization(name="Provisioned")
    make_organization(name="Suspended", status="suspended")
    create_tenant_tables(good.schema_name, users=[True] * 4, contacts=[False] * 7)
    summary = services.usage_readings_run(actor=ACTOR, at=T0 + dt.timedelta(hours=1))
    assert (summary.processed, summary.changed, summary.failed) == (2, 1, 1)
    assert broken.schema_name in summary.errors[0]
    assert list(UsageReading.objects.values_list("organization__name", "seats", "contacts")) == [("Provisioned", 4, 7)]
    with pytest.raises(Conflict):
        services.usage_reading_take(organization_id=broken.pk)


def test_the_cycle_command_reports_each_step(db: Any) -> None:
    good = make_organization()
    create_tenant_tables(good.schema_name, users=[True], contacts=[])
    out = StringIO()
    call_command("billing_run_cycle", "--at", "2026-01-02T00:00:00", stdout=out)
    text = out.getvalue()
    assert "usage: 1/1" in text
    assert "usage: 1 processed, 1 changed, 0 failed." in text
    assert "renewals: 0 processed" in text
    assert "dunning: 0 processed" in text
    assert UsageReading.objects.get().taken_at == dt.datetime(2026, 1, 2, tzinfo=dt.UTC)


def test_the_cycle_command_exits_with_an_error_naming_what_failed(db: Any) -> None:
    broken = make_organization(name="Not provisioned")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match=r"1 item\(s\) failed; see the lines above\."):
        call_command("billing_run_cycle", "--only", "usage", stdout=out, stderr=err)
    assert "usage: 1 processed, 0 changed, 1 failed." in out.getvalue()
    assert broken.schema_name in err.getvalue()
    with pytest.raises(CommandError, match="'yesterday' is not an ISO 8601 date and time"):
        call_command("billing_run_cycle", "--at", "yesterday", stdout=StringIO())
