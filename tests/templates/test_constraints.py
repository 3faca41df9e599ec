"""Rules the schema keeps by itself, whoever writes: deal closing follows the stage, stage order, defaults."""

from __future__ import annotations

import psycopg
import pytest

from tests.templates.support import TENANT_DB, Crm, TenantSchema, names


@TENANT_DB
def test_a_deal_is_closed_exactly_while_its_stage_is_won_or_lost(tenant: TenantSchema) -> None:
    crm = Crm(tenant.admin())
    rep = crm.user("rep@acme.test")
    deal = crm.deal(rep, "Renewal")
    state = "SELECT closed_at IS NOT NULL, lost_reason FROM deals WHERE id = %s"
    crm.conn.execute(
        "UPDATE deals SET stage_id = %s, lost_reason = 'Went with a competitor' WHERE id = %s",
        [crm.stage("Closed lost"), deal],
    )
    assert crm.conn.execute(state, [deal]).fetchone() == (True, "Went with a competitor")
    crm.conn.execute("UPDATE deals SET stage_id = %s WHERE id = %s", [crm.stage("Negotiation"), deal])
    assert crm.conn.execute(state, [deal]).fetchone() == (False, "")  # reopened
    crm.conn.execute(
        "UPDATE deals SET stage_id = %s, lost_reason = 'stale' WHERE id = %s", [crm.stage("Closed won"), deal]
    )
    assert crm.conn.execute(state, [deal]).fetchone() == (True, "")
    # Changing anything but the stage leaves the stage clock alone.
    before = crm.one("SELECT stage_changed_at FROM deals WHERE id = %s", [deal])
    crm.conn.execute("UPDATE deals SET amount = 5 WHERE id = %s", [deal])
    assert crm.one("SELECT stage_changed_at FROM deals WHERE id = %s", [deal]) == before
    assert names(
        crm.conn,
        "SELECT s.name FROM deal_stage_history h JOIN pipeline_stages s ON s.id = h.to_stage_id"
        " WHERE h.deal_id = %s ORDER BY h.id",
        [deal],
    ) == ["Qualification", "Closed lost", "Negotiation", "Closed won"]


@TENANT_DB
def test_stages_reorder_in_one_transaction_and_pipelines_have_one_default(tenant: TenantSchema) -> None:
    conn = tenant.admin()
    pipeline = Crm(conn).pipeline()
    with conn.transaction():  # swapping two positions passes the deferred unique check at commit
        conn.execute(
            "UPDATE pipeline_stages SET position = 1 WHERE pipeline_id = %s AND name = 'Qualification'", [pipeline]
        )
        conn.execute(
            "UPDATE pipeline_stages SET position = 0 WHERE pipeline_id = %s AND name = 'Needs analysis'", [pipeline]
        )
    assert names(conn, "SELECT name FROM pipeline_stages ORDER BY position LIMIT 2") == [
        "Needs analysis",
        "Qualification",
    ]
    with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
        conn.execute(
            "UPDATE pipeline_stages SET position = 2 WHERE pipeline_id = %s AND name = 'Qualification'", [pipeline]
        )
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO pipelines (name, is_default) VALUES ('Second', true)")
    with pytest.raises(psycopg.errors.CheckViolation):  # a won stage is certain
        conn.execute(
            "INSERT INTO pipeline_stages (pipeline_id, name, position, probability, stage_type)"
            " VALUES (%s, 'Won-ish', 9, 90, 'won')",
            [pipeline],
        )


@TENANT_DB
def test_leads_custom_fields_and_tasks_keep_their_invariants(tenant: TenantSchema) -> None:
    crm = Crm(tenant.admin())
    rep = crm.user("rep@acme.test")
    with pytest.raises(psycopg.errors.CheckViolation):  # converted needs its time
        crm.conn.execute("INSERT INTO leads (owner_id, email, status) VALUES (%s, 'a@b.test', 'converted')", [rep])
    with pytest.raises(psycopg.errors.CheckViolation):  # done needs its completion time
        crm.conn.execute("INSERT INTO tasks (owner_id, title, status) VALUES (%s, 'Call back', 'done')", [rep])
    definition = crm.one(
        "INSERT INTO custom_field_definitions (entity, key, label, field_type, options)"
        " VALUES ('contact', 'tier', 'Tier', 'select', '[\"gold\", \"silver\"]') RETURNING id"
    )
    deal = crm.deal(rep, "Deal")
    contact = crm.contact(rep, "Ann", "Lee")
    with pytest.raises(psycopg.errors.CheckViolation):  # a contact field cannot describe a deal
        crm.conn.execute(
            "INSERT INTO custom_field_values (definition_id, entity, field_type, deal_id, value_text)"
            " VALUES (%s, 'contact', 'select', %s, 'gold')",
            [definition, deal],
        )
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # nor claim another type than its definition's
        crm.conn.execute(
            "INSERT INTO custom_field_values (definition_id, entity, field_type, contact_id, value_number)"
            " VALUES (%s, 'contact', 'number', %s, 1)",
            [definition, contact],
        )
    crm.conn.execute(
        "INSERT INTO custom_field_values (definition_id, entity, field_type, contact_id, value_text)"
        " VALUES (%s, 'contact', 'select', %s, 'gold')",
        [definition, contact],
    )
    # Retyping the definition cascades to its values, where the value check then refuses the stale value.
    with pytest.raises(psycopg.errors.CheckViolation):
        crm.conn.execute(
            "UPDATE custom_field_definitions SET field_type = 'number', options = '[]' WHERE id = %s", [definition]
        )
