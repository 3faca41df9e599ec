"""A sales team's week in one tenant, everything done through the app role as the CRM would, with the
constraints refusing what a real team gets wrong along the way."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.templates.support import TENANT_DB, TenantSchema, names


def one(conn: psycopg.Connection[Any], query: str, params: list[Any] | None = None) -> Any:
    row = conn.execute(query, params or []).fetchone()
    assert row is not None
    return row[0]


@TENANT_DB
def test_a_deal_from_first_call_to_shipped_order(tenant: TenantSchema) -> None:
    # Provisioning creates the first admin (as the control plane does); everything else goes through the app.
    root = tenant.admin()
    admin_id = one(
        root, "INSERT INTO crm_users (email, full_name, role) VALUES ('ada@acme.test', 'Ada', 'admin') RETURNING id"
    )
    admin = tenant.app(admin_id, "admin")
    mia = one(
        admin, "INSERT INTO crm_users (email, full_name, role) VALUES ('mia@acme.test', 'Mia', 'manager') RETURNING id"
    )
    sam = one(
        admin, "INSERT INTO crm_users (email, full_name, role) VALUES ('sam@acme.test', 'Sam', 'member') RETURNING id"
    )
    team = one(admin, "INSERT INTO teams (name) VALUES ('Enterprise') RETURNING id")
    admin.execute(
        "INSERT INTO team_members (team_id, user_id, is_lead) VALUES (%s, %s, true), (%s, %s, false)",
        [team, mia, team, sam],
    )
    with pytest.raises(psycopg.errors.UniqueViolation):  # logins are case-insensitive
        admin.execute("INSERT INTO crm_users (email, role) VALUES ('SAM@acme.test', 'member')")
    seats = one(
        admin,
        "INSERT INTO custom_field_definitions (entity, key, label, field_type) VALUES ('deal', 'seats', 'Seats',"
        " 'number') RETURNING id",
    )

    # Sam, a rep, works an account.
    rep = tenant.app(sam, "member")
    company = one(
        rep,
        "INSERT INTO companies (owner_id, name, domain, industry) VALUES (%s, 'Northwind', 'northwind.example',"
        " 'Retail') RETURNING id",
        [sam],
    )
    contact = one(
        rep,
        "INSERT INTO contacts (owner_id, company_id, first_name, last_name, email, job_title)"
        " VALUES (%s, %s, 'Nora', 'Lind', 'Nora.Lind@northwind.example', 'CFO') RETURNING id",
        [sam, company],
    )
    # Contact search: by e-mail prefix (case-insensitive) and full text.
    assert names(rep, "SELECT id FROM contacts WHERE lower(email) LIKE 'nora.l%%' AND deleted_at IS NULL") == [contact]
    assert names(rep, "SELECT id FROM contacts WHERE search_vector @@ plainto_tsquery('simple', 'lind cfo')") == [
        contact
    ]
    pipeline = one(rep, "SELECT id FROM pipelines WHERE is_default")
    stages = dict(rep.execute("SELECT name, id FROM pipeline_stages WHERE pipeline_id = %s", [pipeline]).fetchall())
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # not an ISO 4217 currency
        rep.execute(
            "INSERT INTO deals (owner_id, name, pipeline_id, stage_id, amount, currency) VALUES (%s, 'x', %s, %s,"
            " 1, 'EURO')",
            [sam, pipeline, stages["Qualification"]],
        )
    deal = one(
        rep,
        "INSERT INTO deals (owner_id, name, pipeline_id, stage_id, amount, currency, company_id, contact_id,"
        " expected_close_date)"
        " VALUES (%s, 'Northwind POS rollout', %s, %s, 24000, 'EUR', %s, %s, %s) RETURNING id",
        [sam, pipeline, stages["Qualification"], company, contact, dt.date(2027, 3, 31)],
    )
    rep.execute(
        "INSERT INTO custom_field_values (definition_id, entity, field_type, deal_id, value_number) VALUES (%s,"
        " 'deal', 'number', %s, 40)",
        [seats, deal],
    )
    with pytest.raises(psycopg.errors.CheckViolation):  # a number field holds a number
        rep.execute(
            "UPDATE custom_field_values SET value_number = NULL, value_text = 'forty' WHERE deal_id = %s", [deal]
        )
    tag = one(rep, "INSERT INTO tags (name, created_by) VALUES ('Hot', %s) RETURNING id", [sam])
    rep.execute("INSERT INTO taggings (tag_id, deal_id, tagged_by) VALUES (%s, %s, %s)", [tag, deal, sam])
    with pytest.raises(psycopg.errors.UniqueViolation):
        rep.execute("INSERT INTO taggings (tag_id, deal_id, tagged_by) VALUES (%s, %s, %s)", [tag, deal, sam])

    # Activities on the timeline: a call, a meeting, an e-mail synchronised twice; a task and a note.
    rep.execute(
        "INSERT INTO activities (owner_id, activity_type, subject, direction, contact_id, deal_id, outcome)"
        " VALUES (%s, 'call', 'Discovery call', 'outbound', %s, %s, 'Needs 40 tills')",
        [sam, contact, deal],
    )
    rep.execute(
        "INSERT INTO activities (owner_id, activity_type, status, subject, starts_at, ends_at, company_id, deal_id)"
        " VALUES (%s, 'meeting', 'planned', 'On-site demo', now() + interval '2 days', now() + interval '2 days 1"
        " hour', %s, %s)",
        [sam, company, deal],
    )
    email = (
        "INSERT INTO activities (owner_id, activity_type, subject, email_message_id, contact_id)"
        " VALUES (%s, 'email', 'Proposal', '<p1@mail>', %s)"
    )
    rep.execute(email, [sam, contact])
    with pytest.raises(psycopg.errors.UniqueViolation):
        rep.execute(email, [sam, contact])
    with pytest.raises(psycopg.errors.CheckViolation):  # an activity belongs to some record
        rep.execute("INSERT INTO activities (owner_id, activity_type, subject) VALUES (%s, 'call', 'Orphan')", [sam])
    rep.execute(
        "INSERT INTO tasks (owner_id, created_by, title, due_at, deal_id) VALUES (%s, %s, 'Send proposal', now() +"
        " interval '1 day', %s)",
        [sam, sam, deal],
    )
    rep.execute("INSERT INTO notes (owner_id, body, deal_id) VALUES (%s, 'Budget approved for Q1', %s)", [sam, deal])
    assert names(rep, "SELECT subject FROM activities WHERE deal_id = %s ORDER BY starts_at DESC", [deal]) == [
        "On-site demo",
        "Discovery call",
    ]

    # The deal moves along the board; the stage of another pipeline is refused.
    other = one(admin, "INSERT INTO pipelines (name) VALUES ('Renewals') RETURNING id")
    foreign_stage = one(
        admin,
        "INSERT INTO pipeline_stages (pipeline_id, name, position, probability) VALUES (%s, 'Open', 0, 50)"
        " RETURNING id",
        [other],
    )
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="deals_stage_in_pipeline_fkey"):
        rep.execute("UPDATE deals SET stage_id = %s WHERE id = %s", [foreign_stage, deal])
    for stage in ("Needs analysis", "Proposal", "Negotiation"):
        rep.execute("UPDATE deals SET stage_id = %s WHERE id = %s", [stages[stage], deal])
    assert rep.execute("SELECT closed_at FROM deals WHERE id = %s", [deal]).fetchone() == (None,)
    weighted = rep.execute(
        "SELECT deal_count, total_amount, weighted_amount FROM pipeline_summary WHERE stage_name = 'Negotiation'"
        " AND currency = 'EUR'"
    ).fetchall()
    assert weighted == [(1, Decimal("24000.00"), Decimal("18000.00"))]

    # Meanwhile Mia, the manager, sets up the catalogue, buys stock and receives it.
    mgr = tenant.app(mia, "manager")
    product = one(
        mgr, "INSERT INTO products (code, name, tax_rate) VALUES ('POS', 'Point-of-sale till', 0.2) RETURNING id"
    )
    variant = one(
        mgr,
        "INSERT INTO product_variants (product_id, sku, attributes, cost_price, cost_currency) VALUES (%s,"
        " 'POS-BLK', '{\"colour\": \"black\"}', 350, 'EUR') RETURNING id",
        [product],
    )
    warehouse = one(mgr, "INSERT INTO warehouses (code, name) VALUES ('HAM', 'Hamburg') RETURNING id")
    book = one(
        mgr, "INSERT INTO price_books (name, currency, is_default) VALUES ('Standard EUR', 'EUR', true) RETURNING id"
    )
    mgr.execute(
        "INSERT INTO price_book_entries (price_book_id, variant_id, min_quantity, unit_price)"
        " VALUES (%s, %s, 1, 600), (%s, %s, 20, 550)",
        [book, variant, book, variant],
    )
    supplier = one(mgr, "INSERT INTO suppliers (code, name, currency) VALUES ('TILLCO', 'Till Co', 'EUR') RETURNING id")
    po = one(
        mgr,
        "INSERT INTO purchase_orders (supplier_id, warehouse_id, currency, status, ordered_at) VALUES (%s, %s,"
        " 'EUR', 'ordered', now()) RETURNING id",
        [supplier, warehouse],
    )
    po_line = one(
        mgr,
        "INSERT INTO purchase_order_lines (purchase_order_id, position, variant_id, quantity, unit_cost) VALUES"
        " (%s, 1, %s, 50, 350) RETURNING id",
        [po, variant],
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):  # reps do not buy
        rep.execute("INSERT INTO warehouses (code, name) VALUES ('X', 'X')")
    mgr.execute(
        "SELECT stock_move(%s, %s, 50, 'receipt', p_unit_cost => 350, p_purchase_order_line_id => %s)",
        [variant, warehouse, po_line],
    )
    assert mgr.execute(
        "SELECT received, outstanding FROM purchase_order_line_receipts WHERE purchase_order_line_id = %s", [po_line]
    ).fetchone() == (Decimal("50.000"), Decimal("0.000"))

    # Sam quotes 40 tills from the price book, with a discount; the quote's currency must be the book's.
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="quotes_price_book_currency_fkey"):
        rep.execute(
            "INSERT INTO quotes (owner_id, deal_id, price_book_id, currency) VALUES (%s, %s, %s, 'USD')",
            [sam, deal, book],
        )
    quote_id, quote_number = rep.execute(
        "INSERT INTO quotes (owner_id, deal_id, company_id, contact_id, price_book_id, currency, valid_until)"
        " VALUES (%s, %s, %s, %s, %s, 'EUR', current_date + 30) RETURNING id, number",
        [sam, deal, company, contact, book],
    ).fetchone()
    assert quote_number.startswith("Q-")
    price = one(
        rep,
        "SELECT unit_price FROM price_book_entries WHERE price_book_id = %s AND variant_id = %s AND min_quantity <="
        " 40 ORDER BY min_quantity DESC LIMIT 1",
        [book, variant],
    )
    rep.execute(
        "INSERT INTO quote_lines (quote_id, position, variant_id, quantity, unit_price, discount_percent, tax_rate)"
        " VALUES (%s, 1, %s, 40, %s, 10, 0.2)",
        [quote_id, variant, price],
    )
    with pytest.raises(psycopg.errors.CheckViolation):
        rep.execute(
            "INSERT INTO quote_lines (quote_id, position, variant_id, quantity, unit_price, discount_percent)"
            " VALUES (%s, 2, %s, 1, 1, 120)",
            [quote_id, variant],
        )
    assert rep.execute(
        "SELECT line_count, subtotal, tax, total FROM quote_totals WHERE quote_id = %s", [quote_id]
    ).fetchone() == (
        1,
        Decimal("19800.00"),
        Decimal("3960.00"),
        Decimal("23760.00"),
    )
    with pytest.raises(psycopg.errors.CheckViolation):  # accepted needs sent and accepted times
        rep.execute("UPDATE quotes SET status = 'accepted' WHERE id = %s", [quote_id])
    rep.execute(
        "UPDATE quotes SET status = 'accepted', sent_at = now() - interval '1 day', accepted_at = now() WHERE id = %s",
        [quote_id],
    )

    # Stock is held for the deal, the deal is won, the quote becomes an order that ships the reservation.
    reservation = one(rep, "SELECT (stock_reserve(%s, %s, 40, p_deal_id => %s)).id", [variant, warehouse, deal])
    assert rep.execute(
        "SELECT on_hand, reserved, available FROM stock_levels WHERE variant_id = %s", [variant]
    ).fetchone() == (
        Decimal("50.000"),
        Decimal("40.000"),
        Decimal("10.000"),
    )
    rep.execute("UPDATE deals SET stage_id = %s, amount = 19800 WHERE id = %s", [stages["Closed won"], deal])
    closed_at = one(rep, "SELECT closed_at FROM deals WHERE id = %s", [deal])
    assert closed_at is not None
    order = one(
        rep,
        "INSERT INTO sales_orders (owner_id, quote_id, deal_id, company_id, warehouse_id, currency, status,"
        " confirmed_at)"
        " VALUES (%s, %s, %s, %s, %s, 'EUR', 'confirmed', now()) RETURNING id",
        [sam, quote_id, deal, company, warehouse],
    )
    with pytest.raises(psycopg.errors.UniqueViolation):  # one order per quote
        rep.execute(
            "INSERT INTO sales_orders (owner_id, quote_id, warehouse_id, currency) VALUES (%s, %s, %s, 'EUR')",
            [sam, quote_id, warehouse],
        )
    order_line = one(
        rep,
        "INSERT INTO sales_order_lines (sales_order_id, position, variant_id, quantity, unit_price,"
        " discount_percent, tax_rate)"
        " SELECT %s, position, variant_id, quantity, unit_price, discount_percent, tax_rate FROM quote_lines WHERE"
        " quote_id = %s RETURNING id",
        [order, quote_id],
    )
    shipped = rep.execute(
        "SELECT kind, quantity, balance_after FROM stock_move(%s, %s, -40, 'shipment', p_sales_order_line_id => %s,"
        " p_reservation_id => %s)",
        [variant, warehouse, order_line, reservation],
    ).fetchone()
    assert shipped == ("shipment", Decimal("-40.000"), Decimal("10.000"))
    rep.execute("UPDATE sales_orders SET status = 'fulfilled', fulfilled_at = now() WHERE id = %s", [order])

    # What the database now holds, as the tenant's admin sees it.
    assert admin.execute("SELECT on_hand, reserved, available FROM stock_levels").fetchall() == [
        (Decimal("10.000"), Decimal("0.000"), Decimal("10.000"))
    ]
    assert names(admin, "SELECT status FROM stock_reservations") == ["fulfilled"]
    history = admin.execute(
        "SELECT s.name, h.changed_by FROM deal_stage_history h JOIN pipeline_stages s ON s.id = h.to_stage_id"
        " WHERE h.deal_id = %s ORDER BY h.id",
        [deal],
    ).fetchall()
    assert history == [
        (name, sam) for name in ("Qualification", "Needs analysis", "Proposal", "Negotiation", "Closed won")
    ]
    amount_changes = admin.execute(
        "SELECT changes #>> '{amount,0}', changes #>> '{amount,1}', actor_id FROM activity_log"
        " WHERE table_name = 'deals' AND record_id = %s AND action = 'update' AND changes ? 'amount'",
        [deal],
    ).fetchall()
    assert amount_changes == [("24000.00", "19800.00", sam)]
    assert admin.execute(
        "SELECT deal_count, total_amount FROM pipeline_summary WHERE stage_type = 'won' AND currency = 'EUR'"
    ).fetchall() == [(1, Decimal("19800.00"))]
    assert one(admin, "SELECT stock_value FROM stock_valuation WHERE variant_id = %s", [variant]) == Decimal("3500.00")
    # Mia (same team) sees Sam's deal; a rep of no team does not.
    assert names(mgr, "SELECT name FROM deals") == ["Northwind POS rollout"]
    loner = one(admin, "INSERT INTO crm_users (email, role) VALUES ('lee@acme.test', 'member') RETURNING id")
    assert names(tenant.app(loner, "member"), "SELECT count(*) FROM deals") == [0]
