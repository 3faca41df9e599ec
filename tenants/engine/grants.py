"""The check that runs after each file, inside its transaction: the schema stays closed to other roles.

Every object in the schema (the schema itself, relations, columns, functions, types, and the default
privileges of the schema or of the owner role) must grant nothing to PUBLIC or to any role but the
tenant's own two. (Ownership needs no check: the owner role can give objects only to roles it is a member
of, and it is a member of none.) Otherwise the statement raises (SQLSTATE 42501) and the file rolls back
whole like any failure.
"""

from __future__ import annotations

from psycopg import sql

from tenants.engine.naming import TenantRoles

GRANTS_SQL = """
WITH ns AS (SELECT oid, nspacl FROM pg_catalog.pg_namespace WHERE nspname = {schema}),
own AS (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = {owner}),
allowed AS (SELECT array_agg(oid) AS oids FROM pg_catalog.pg_roles WHERE rolname IN ({owner}, {app})),
objects AS (
    SELECT 'schema' AS kind, {schema}::text AS name, ns.nspacl AS acl FROM ns
    UNION ALL SELECT 'relation', c.relname, c.relacl
        FROM pg_catalog.pg_class c JOIN ns ON c.relnamespace = ns.oid
    UNION ALL SELECT 'column', c.relname || '.' || a.attname, a.attacl
        FROM pg_catalog.pg_class c JOIN ns ON c.relnamespace = ns.oid
        CROSS JOIN LATERAL (SELECT attname, attacl FROM pg_catalog.pg_attribute
                            WHERE attrelid = c.oid AND attacl IS NOT NULL) a
    UNION ALL SELECT 'function', p.proname, p.proacl
        FROM pg_catalog.pg_proc p JOIN ns ON p.pronamespace = ns.oid
    UNION ALL SELECT 'type', t.typname, t.typacl
        FROM pg_catalog.pg_type t JOIN ns ON t.typnamespace = ns.oid
    UNION ALL SELECT 'default privileges', '', d.defaclacl
        FROM pg_catalog.pg_default_acl d, ns, own
        WHERE d.defaclnamespace = ns.oid OR d.defaclrole = own.oid
),
problems AS (
    SELECT o.kind || ' ' || o.name || ' grants ' || x.privilege_type || ' to '
           || CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(x.grantee) END AS problem
        FROM objects o CROSS JOIN LATERAL pg_catalog.aclexplode(o.acl) x, allowed
        WHERE o.acl IS NOT NULL AND x.grantee <> ALL (allowed.oids)
)
SELECT string_agg(problem, '; ' ORDER BY problem) FROM (SELECT problem FROM problems LIMIT 20) p
"""


def grants_check(schema: str, roles: TenantRoles) -> sql.Composable:
    """A statement that fails (42501) when the schema opens anything to another role; the engine's own SQL."""
    query = sql.SQL(GRANTS_SQL).format(
        schema=sql.Literal(schema), owner=sql.Literal(roles.owner), app=sql.Literal(roles.app)
    )
    return sql.SQL(
        "DO $tenant_sql_grants$ DECLARE found text; BEGIN {query} INTO found;"
        " IF found IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE = '42501',"
        " MESSAGE = 'the file opens the schema to other roles: ' || found,"
        " HINT = 'grant only to ${{owner_role}} and ${{app_role}}; never to PUBLIC or other roles'; END IF; END"
        " $tenant_sql_grants$"
    ).format(query=query)
