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
WITH ns AS (SELECT oid, nspacl FROM pg_catalog.pg_namespace WHERE nspname = p_schema),
own AS (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = p_owner),
allowed AS (SELECT array_agg(oid) AS oids FROM pg_catalog.pg_roles WHERE rolname IN (p_owner, p_app)),
-- Every object of a schema depends on it in pg_depend, whose index finds them without scanning the catalog
-- (which grows with every client's objects).
members AS (
    SELECT d.classid, d.objid FROM pg_catalog.pg_depend d, ns
    WHERE d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.refobjid = ns.oid
),
objects AS (
    SELECT 'schema' AS kind, p_schema::text AS name, ns.nspacl AS acl FROM ns
    UNION ALL SELECT 'relation', c.relname, c.relacl
        FROM members m JOIN pg_catalog.pg_class c ON c.oid = m.objid
        WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
    UNION ALL SELECT 'column', c.relname || '.' || a.attname, a.attacl
        FROM members m JOIN pg_catalog.pg_class c ON c.oid = m.objid
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
        WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND a.attacl IS NOT NULL
    UNION ALL SELECT 'function', p.proname, p.proacl
        FROM members m JOIN pg_catalog.pg_proc p ON p.oid = m.objid
        WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
    UNION ALL SELECT 'type', t.typname, t.typacl
        FROM members m JOIN pg_catalog.pg_type t ON t.oid = m.objid
        WHERE m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
    UNION ALL SELECT 'default privileges', '', d.defaclacl
        FROM pg_catalog.pg_default_acl d, own WHERE d.defaclrole = own.oid
    UNION ALL SELECT 'default privileges', '', d.defaclacl
        FROM pg_catalog.pg_default_acl d, ns WHERE d.defaclnamespace = ns.oid
),
problems AS (
    SELECT o.kind || ' ' || o.name || ' grants ' || x.privilege_type || ' to '
           || CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(x.grantee) END AS problem
        FROM objects o CROSS JOIN LATERAL pg_catalog.aclexplode(o.acl) x, allowed
        WHERE o.acl IS NOT NULL AND x.grantee <> ALL (allowed.oids)
)
SELECT string_agg(problem, '; ' ORDER BY problem) FROM (SELECT problem FROM problems LIMIT 20) p
"""


GRANTS_FUNCTION = "tenant_sql_grants_check_v2"
# One function in public, created by the privileged path (``migrator_ensure``), so that its plan is made once
# per session (generic plan: planning the query costs more than running it); an inline DO block would be
# compiled and planned again for every file.
GRANTS_FUNCTION_SQL = (
    "CREATE OR REPLACE FUNCTION public.{function}(p_schema name, p_owner name, p_app name) RETURNS void"
    " LANGUAGE plpgsql SET search_path = pg_catalog SET plan_cache_mode = force_generic_plan"
    " AS $tenant_sql_grants$"
    " DECLARE found text; BEGIN " + GRANTS_SQL.rstrip() + " INTO found;"
    " IF found IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE = '42501',"
    " MESSAGE = 'the file opens the schema to other roles: ' || found,"
    " HINT = 'grant only to ${{owner_role}} and ${{app_role}}; never to PUBLIC or other roles'; END IF; END"
    " $tenant_sql_grants$"
)


def grants_check(schema: str, roles: TenantRoles) -> sql.Composable:
    """A statement that fails (42501) when the schema opens anything to another role; the engine's own SQL."""
    return sql.SQL("SELECT public.{}({}, {}, {})").format(
        sql.Identifier(GRANTS_FUNCTION), sql.Literal(schema), sql.Literal(roles.owner), sql.Literal(roles.app)
    )


def grants_function_create(migrator: str) -> sql.Composable:
    """The privileged path's statements that (re)create the check function, executable by the migrator only."""
    function = sql.Identifier(GRANTS_FUNCTION)
    return sql.SQL("; ").join(
        [
            sql.SQL(GRANTS_FUNCTION_SQL).format(function=function),
            sql.SQL("REVOKE ALL ON FUNCTION public.{}(name, name, name) FROM PUBLIC").format(function),
            sql.SQL("GRANT EXECUTE ON FUNCTION public.{}(name, name, name) TO {}").format(
                function, sql.Identifier(migrator)
            ),
        ]
    )
