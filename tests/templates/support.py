"""Helpers shared by the template test modules: a tenant schema's connections, seeding, small queries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tenants.engine.naming import TenantRoles
from tests.support import tenant_conninfo

TENANT_DB = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)


@dataclass
class TenantSchema:
    schema: str
    roles: TenantRoles
    app_password: str
    _open: list[psycopg.Connection[Any]] = field(default_factory=list)

    def admin(self) -> psycopg.Connection[Any]:
        """A superuser connection whose search_path is this schema (row-level security does not apply)."""
        conn = psycopg.connect(**tenant_conninfo())
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        self._open.append(conn)
        return conn

    def app(self, user_id: uuid.UUID | None = None, role: str | None = None) -> psycopg.Connection[Any]:
        """A password login as the tenant's app role, identified as a CRM user the way the app does it."""
        conn = psycopg.connect(**tenant_conninfo(user=self.roles.app, password=self.app_password))
        self._open.append(conn)
        if user_id is not None:
            conn.execute("SELECT set_config('app.user_id', %s, false)", [str(user_id)])
        if role is not None:
            conn.execute("SELECT set_config('app.role', %s, false)", [role])
        return conn

    def close(self) -> None:
        for conn in self._open:
            conn.close()
        self._open.clear()


class Crm:
    """Seeds a tenant schema through the superuser connection (row-level security does not apply)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def one(self, query: str, params: list[Any] | None = None) -> Any:
        row = self.conn.execute(query, params or []).fetchone()
        assert row is not None
        return row[0]

    def user(self, email: str, role: str = "member", *, active: bool = True) -> uuid.UUID:
        return self.one(
            "INSERT INTO crm_users (email, full_name, role, is_active) VALUES (%s, %s, %s, %s) RETURNING id",
            [email, email.split("@")[0].title(), role, active],
        )

    def team(self, name: str, *members: uuid.UUID) -> uuid.UUID:
        team_id = self.one("INSERT INTO teams (name) VALUES (%s) RETURNING id", [name])
        for member in members:
            self.conn.execute("INSERT INTO team_members (team_id, user_id) VALUES (%s, %s)", [team_id, member])
        return team_id

    def company(self, owner: uuid.UUID, name: str, *, private: bool = False) -> uuid.UUID:
        return self.one(
            "INSERT INTO companies (owner_id, name, is_private) VALUES (%s, %s, %s) RETURNING id",
            [owner, name, private],
        )

    def contact(
        self, owner: uuid.UUID, first: str, last: str, email: str | None = None, *, private: bool = False
    ) -> uuid.UUID:
        return self.one(
            "INSERT INTO contacts (owner_id, first_name, last_name, email, is_private)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            [owner, first, last, email, private],
        )

    def stage(self, name: str) -> uuid.UUID:
        return self.one("SELECT id FROM pipeline_stages WHERE name = %s", [name])

    def pipeline(self) -> uuid.UUID:
        return self.one("SELECT id FROM pipelines WHERE is_default")

    def deal(
        self,
        owner: uuid.UUID,
        name: str,
        amount: str = "1000.00",
        *,
        currency: str = "EUR",
        stage: str = "Qualification",
        private: bool = False,
    ) -> uuid.UUID:
        return self.one(
            "INSERT INTO deals (owner_id, name, amount, currency, pipeline_id, stage_id, is_private)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            [owner, name, Decimal(amount), currency, self.pipeline(), self.stage(stage), private],
        )

    def warehouse(self, code: str) -> uuid.UUID:
        return self.one("INSERT INTO warehouses (code, name) VALUES (%s, %s) RETURNING id", [code, f"{code} store"])

    def variant(self, sku: str, cost: str = "10.00", *, currency: str = "EUR") -> uuid.UUID:
        product = self.one(
            "INSERT INTO products (code, name) VALUES (%s, %s) RETURNING id", [sku.split("-")[0] + sku, sku.title()]
        )
        return self.one(
            "INSERT INTO product_variants (product_id, sku, cost_price, cost_currency)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            [product, sku, Decimal(cost), currency],
        )


def names(conn: psycopg.Connection[Any], query: str, params: list[Any] | None = None) -> list[Any]:
    """The first column of every row, in order."""
    return [row[0] for row in conn.execute(query, params or []).fetchall()]
