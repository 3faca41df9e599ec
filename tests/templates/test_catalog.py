"""A fresh apply creates every expected table, view, function and policy, owned and granted as designed."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from tenants.engine.lint import template_set_read, templates_lint
from tenants.engine.services import schema_apply, schema_create, tenant_roles
from tests.support import tenant_conninfo
from tests.templates.support import TENANT_DB, TenantSchema, names

TABLES_001 = {
    "currencies", "crm_users", "teams", "team_members", "companies", "contacts", "leads", "pipelines",
    "pipeline_stages", "deals", "deal_stage_history", "activities", "tasks", "notes", "tags", "taggings",
    "custom_field_definitions", "custom_field_values", "attachments", "email_templates", "tenant_settings",
    "activity_log",
}  # fmt: skip
TABLES_002 = {
    "channels", "channel_members", "messages", "threads", "message_reactions", "shared_documents",
    "document_versions", "comments", "mentions", "notifications", "read_states",
}  # fmt: skip
TABLES_003 = {
    "product_categories", "products", "product_variants", "price_books", "price_book_entries", "warehouses",
    "suppliers", "purchase_orders", "purchase_order_lines", "quotes", "quote_lines", "sales_orders",
    "sales_order_lines", "stock_levels", "stock_reservations", "stock_movements",
}  # fmt: skip
VIEWS = {
    "pipeline_summary", "channel_unread_counts", "document_current_versions", "stock_valuation", "product_stock",
    "quote_totals", "purchase_order_line_receipts",
}  # fmt: skip
FUNCTIONS = {
    "set_updated_at", "forbid_update_delete", "app_current_user_id", "app_current_role", "app_identity_valid",
    "is_team_visible",
    "is_record_visible", "can_write_record", "are_targets_visible", "deals_stage_sync", "deals_stage_history_append",
    "log_record_change", "crm_users_guard", "crm_user_login", "crm_user_set_password",
    "is_channel_member", "is_channel_owner", "is_channel_visible", "is_channel_joinable", "is_document_visible",
    "are_collab_targets_visible", "is_comment_visible", "notifications_mark_read", "document_version_add",
    "stock_refuse", "stock_move", "stock_reserve", "stock_release", "stock_expire_reservations",
    "is_quote_visible", "can_write_quote", "is_sales_order_visible", "can_write_sales_order",
}  # fmt: skip
# Tables without row-level security: ISO reference data, read-only to the app.
NO_RLS = {"currencies"}
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
POLICY_SETS = {
    ("select", "insert", "update", "delete"): [
        "crm_users", "teams", "team_members", "companies", "contacts", "leads", "deals", "activities", "tasks", "notes",
        "attachments", "custom_field_values", "pipelines", "pipeline_stages", "tags", "custom_field_definitions",
        "tenant_settings", "email_templates", "channels", "channel_members", "messages", "threads",
        "shared_documents", "comments", "notifications", "quotes", "sales_orders",
    ],
    ("select", "insert", "delete"): ["taggings", "message_reactions", "mentions"],
    ("select", "insert"): ["deal_stage_history", "activity_log", "document_versions", "stock_movements"],
    ("select", "write"): [
        "product_categories", "products", "product_variants", "price_books", "price_book_entries", "warehouses",
        "suppliers", "purchase_orders", "purchase_order_lines", "quote_lines", "sales_order_lines",
    ],
    ("all",): ["read_states", "stock_levels", "stock_reservations"],
}  # fmt: skip
EXPECTED_POLICIES = {f"{table}_{cmd}" for cmds, tables in POLICY_SETS.items() for table in tables for cmd in cmds}
# Every table's RESTRICTIVE identity check; the directory tables are readable before login, so theirs is on writes.
EXPECTED_POLICIES |= {f"{table}_identity" for tables in POLICY_SETS.values() for table in tables}
EXPECTED_POLICIES -= {"crm_users_identity", "team_members_identity"}
EXPECTED_POLICIES |= {
    f"{t}_identity_{c}" for t in ("crm_users", "team_members") for c in ("insert", "update", "delete")
}


def catalog(conn: psycopg.Connection[Any], schema: str, kinds: str) -> set[str]:
    return set(
        names(
            conn,
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind = ANY(%s)",
            [schema, list(kinds)],
        )
    )


@TENANT_DB
def test_fresh_apply_creates_every_table_view_function_trigger_and_policy(tenant: TenantSchema) -> None:
    conn = tenant.admin()
    assert catalog(conn, tenant.schema, "r") == TABLES_001 | TABLES_002 | TABLES_003
    assert catalog(conn, tenant.schema, "v") == VIEWS
    assert catalog(conn, tenant.schema, "S") == {
        "purchase_order_number_seq", "quote_number_seq", "sales_order_number_seq", "deal_stage_history_id_seq",
        "activity_log_id_seq", "notifications_id_seq", "stock_movements_id_seq",
    }  # fmt: skip
    assert set(names(conn, "SELECT proname FROM pg_proc WHERE pronamespace = %s::regnamespace", [tenant.schema])) == (
        FUNCTIONS
    )
    # Every table but the reference data is under ENABLEd and FORCEd row-level security, with policies.
    rows = conn.execute(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
        " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
        " FROM pg_class c WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'r'",
        [tenant.schema],
    ).fetchall()
    for table, enabled, forced, policies in rows:
        if table in NO_RLS:
            assert (enabled, forced, policies) == (False, False, 0), table
        else:
            assert enabled and forced and policies >= 1, table
    policies = set(names(conn, "SELECT policyname FROM pg_policies WHERE schemaname = %s", [tenant.schema]))
    assert policies == EXPECTED_POLICIES
    # The updated_at trigger on every table that has the column; append-only triggers on the two ledgers.
    with_updated_at = set(
        names(
            conn,
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = %s AND column_name = 'updated_at' AND table_name <> ALL(%s)",
            [tenant.schema, list(VIEWS)],
        )
    )
    stamped = set(
        names(
            conn,
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE c.relnamespace = %s::regnamespace AND t.tgfoid = %s::regprocedure",
            [tenant.schema, f'"{tenant.schema}".set_updated_at()'],
        )
    )
    assert stamped == with_updated_at - {"stock_levels", "stock_reservations"}  # written only by stock functions
    append_only = names(
        conn,
        "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE c.relnamespace = %s::regnamespace AND t.tgfoid = %s::regprocedure ORDER BY 1",
        [tenant.schema, f'"{tenant.schema}".forbid_update_delete()'],
    )
    assert append_only == ["activity_log", "stock_movements"]
    # The contract others rely on.
    crm_users = conn.execute(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'crm_users' ORDER BY ordinal_position",
        [tenant.schema],
    ).fetchall()
    assert crm_users[0] == ("id", "uuid", "NO", "gen_random_uuid()")
    assert {c[0] for c in crm_users} >= {
        "id", "email", "full_name", "role", "is_active", "password_hash", "created_at", "updated_at",
    }  # fmt: skip
    assert names(
        conn,
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'contacts' AND column_name = 'deleted_at'",
        [tenant.schema],
    ) == ["timestamp with time zone"]
    assert names(conn, "SELECT value #>> '{}' FROM tenant_settings WHERE key = 'tenant.id'")[0]
    currencies = dict(conn.execute("SELECT code, minor_units FROM currencies").fetchall())
    assert len(currencies) > 150 and (currencies["EUR"], currencies["JPY"], currencies["BHD"]) == (2, 0, 3)


@TENANT_DB
def test_every_object_belongs_to_the_owner_role_and_definer_functions_never_run_as_superuser(
    tenant: TenantSchema,
) -> None:
    conn = tenant.admin()
    owners = set(
        names(
            conn,
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = %s::regnamespace",
            [tenant.schema],
        )
    )
    assert owners == {tenant.roles.owner}
    definers = conn.execute(
        "SELECT proname, pg_get_userbyid(proowner) FROM pg_proc WHERE pronamespace = %s::regnamespace AND prosecdef",
        [tenant.schema],
    ).fetchall()
    assert len(definers) >= 20
    assert {owner for _, owner in definers} == {tenant.roles.owner}
    assert names(conn, "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", [tenant.roles.owner]) == [
        False
    ]
    # Nothing landed outside the tenant's schema.
    assert names(
        conn,
        "SELECT count(*) FROM pg_class WHERE relowner = %s::regrole"
        " AND relnamespace NOT IN (%s::regnamespace, 'pg_toast'::regnamespace)",
        [tenant.roles.owner, tenant.schema],
    ) == [0]


@TENANT_DB
def test_every_privilege_the_app_role_holds_is_governed_by_a_policy(tenant: TenantSchema) -> None:
    conn = tenant.admin()
    for table in sorted((TABLES_001 | TABLES_002 | TABLES_003) - NO_RLS):
        qualified = f'"{tenant.schema}".{table}'
        granted = {
            p
            for p in PRIVILEGES
            if names(conn, "SELECT has_table_privilege(%s, %s, %s)", [tenant.roles.app, qualified, p])[0]
            or (
                p != "DELETE"
                and names(conn, "SELECT has_any_column_privilege(%s, %s, %s)", [tenant.roles.app, qualified, p])[0]
            )
        }
        assert "SELECT" in granted, table
        covered = set()
        for cmd in names(
            conn,
            "SELECT cmd FROM pg_policies WHERE schemaname = %s AND tablename = %s AND permissive = 'PERMISSIVE'",
            [tenant.schema, table],
        ):
            covered |= set(PRIVILEGES) if cmd == "ALL" else {cmd}
        assert granted <= covered, f"{table}: app may {sorted(granted - covered)} without a policy"
    # Ledgers and stock are read-only to the app; the password hash is not readable.
    for table, privilege in [
        ("stock_movements", "INSERT"), ("stock_movements", "UPDATE"), ("stock_levels", "UPDATE"),
        ("stock_reservations", "INSERT"), ("activity_log", "UPDATE"), ("activity_log", "DELETE"),
        ("deal_stage_history", "INSERT"), ("document_versions", "UPDATE"), ("currencies", "INSERT"),
    ]:  # fmt: skip
        assert names(
            conn, "SELECT has_table_privilege(%s, %s, %s)", [tenant.roles.app, f'"{tenant.schema}".{table}', privilege]
        ) == [False], (table, privilege)
    assert names(
        conn,
        "SELECT has_column_privilege(%s, %s, 'password_hash', 'SELECT')",
        [tenant.roles.app, f'"{tenant.schema}".crm_users'],
    ) == [False]


@TENANT_DB
def test_the_shipped_templates_lint_clean_and_reapplying_is_a_no_op(tenant: TenantSchema) -> None:
    assert [str(p) for p in templates_lint(Path(settings.TENANT_TEMPLATES_DIR)).problems] == []
    result = schema_apply(schema=tenant.schema, applied_by="tests.templates")
    assert result.applied == [] and result.already_applied == 3


@TENANT_DB
def test_a_role_of_one_tenant_cannot_read_another_tenants_tables(make_tenant: Callable[..., TenantSchema]) -> None:
    a, b = make_tenant("tpla"), make_tenant("tplb")
    seed = b.admin()
    admin_b = seed.execute(
        "INSERT INTO crm_users (email, role) VALUES ('root@b.test', 'admin') RETURNING id"
    ).fetchone()
    assert admin_b is not None
    seed.execute("INSERT INTO companies (owner_id, name) VALUES (%s, 'B secret')", [admin_b[0]])
    # Tenant A's app role, even claiming tenant B's admin identity, is refused by the database.
    intruder = a.app(admin_b[0], "admin")
    for table in ("companies", "crm_users", "stock_levels", "tenant_settings"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"permission denied for schema {b.schema}"):
            intruder.execute(sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(b.schema), sql.Identifier(table)))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        intruder.execute(sql.SQL("SELECT {}.app_current_role()").format(sql.Identifier(b.schema)))
    # Its session sees its own schema only, by unqualified name.
    assert names(intruder, "SELECT current_schemas(false)") == [[a.schema]]
    assert names(intruder, "SELECT count(*) FROM companies") == [0]
    # Nor can it reach the control plane's tables in public.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        intruder.execute("SELECT * FROM public.tenant_sql_ledger")
    # And B's own app role, with B's admin identity, does see it.
    assert names(b.app(admin_b[0], "admin"), "SELECT name FROM companies") == ["B secret"]


@TENANT_DB
def test_each_template_also_runs_as_one_psql_transaction(tmp_path: Path) -> None:
    """The files are plain SQL: psql -1 -v ON_ERROR_STOP=1 applies them with the placeholders substituted."""
    psql = shutil.which("psql")
    assert psql is not None, "psql (PostgreSQL client) must be installed to run this check"
    schema = f"tplpsql_{uuid.uuid4().hex[:8]}"
    schema_create(schema=schema)
    roles = tenant_roles(schema)
    info = tenant_conninfo()
    env = {"PGPASSWORD": info["password"] or "", "PATH": "/usr/bin:/bin"}
    for template in template_set_read(Path(settings.TENANT_TEMPLATES_DIR)).templates:
        rendered = tmp_path / template.filename
        rendered.write_text(template.render(owner_role=roles.owner, app_role=roles.app, tenant_id=str(uuid.uuid4())))
        completed = subprocess.run(
            [
                psql,
                "-X",
                "-q",
                "-1",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(info["host"]),
                "-p",
                str(info["port"]),
                "-U",
                info["user"] or "postgres",
                "-d",
                info["dbname"],
                "-c",
                f'SET LOCAL search_path TO "{schema}"',
                "-c",
                f'SET LOCAL ROLE "{roles.owner}"',
                "-f",
                str(rendered),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
        assert completed.returncode == 0, f"{template.filename}: {completed.stderr}"
    with psycopg.connect(**tenant_conninfo()) as conn:
        assert catalog(conn, schema, "r") == TABLES_001 | TABLES_002 | TABLES_003
        assert catalog(conn, schema, "v") == VIEWS
