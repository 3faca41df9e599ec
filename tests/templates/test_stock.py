"""Stock functions: the ledger and the levels move together, never below zero, and the ledger is append-only."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.templates.support import TENANT_DB, Crm, TenantSchema, names

MOVE = "SELECT kind, quantity, balance_after, moved_by FROM stock_move(%s, %s, %s, %s)"


@dataclass
class Stock:
    tenant: TenantSchema
    crm: Crm
    manager: uuid.UUID
    clerk: uuid.UUID
    variant: uuid.UUID
    main: uuid.UUID
    annex: uuid.UUID

    def as_clerk(self) -> psycopg.Connection[Any]:
        return self.tenant.app(self.clerk, "member")

    def as_manager(self) -> psycopg.Connection[Any]:
        return self.tenant.app(self.manager, "manager")

    def level(self, warehouse: uuid.UUID | None = None) -> tuple[Decimal, Decimal, Decimal] | None:
        return self.crm.conn.execute(
            "SELECT on_hand, reserved, available FROM stock_levels WHERE variant_id = %s AND warehouse_id = %s",
            [self.variant, warehouse or self.main],
        ).fetchone()

    def ledger(self, warehouse: uuid.UUID | None = None) -> list[tuple[str, Decimal, Decimal]]:
        return self.crm.conn.execute(
            "SELECT kind, quantity, balance_after FROM stock_movements"
            " WHERE variant_id = %s AND warehouse_id = %s ORDER BY id",
            [self.variant, warehouse or self.main],
        ).fetchall()


@pytest.fixture
def stock(tenant: TenantSchema) -> Stock:
    crm = Crm(tenant.admin())
    return Stock(
        tenant=tenant,
        crm=crm,
        manager=crm.user("manager@shop.test", "manager"),
        clerk=crm.user("clerk@shop.test"),
        variant=crm.variant("CHAIR-OAK", "40.00"),
        main=crm.warehouse("MAIN"),
        annex=crm.warehouse("ANNEX"),
    )


def d(value: str) -> Decimal:
    return Decimal(value)


@TENANT_DB
def test_moves_keep_ledger_and_level_consistent(stock: Stock) -> None:
    clerk = stock.as_clerk()
    assert clerk.execute(MOVE, [stock.variant, stock.main, 10, "receipt"]).fetchall() == [
        ("receipt", d("10.000"), d("10.000"), stock.clerk)
    ]
    clerk.execute(MOVE, [stock.variant, stock.main, d("2.5"), "return"])
    clerk.execute(MOVE, [stock.variant, stock.main, -4, "shipment"])
    stock.as_manager().execute(MOVE, [stock.variant, stock.main, d("-0.5"), "adjustment"])
    assert stock.ledger() == [
        ("receipt", d("10.000"), d("10.000")),
        ("return", d("2.500"), d("12.500")),
        ("shipment", d("-4.000"), d("8.500")),
        ("adjustment", d("-0.500"), d("8.000")),
    ]
    assert stock.level() == (d("8.000"), d("0.000"), d("8.000"))
    # The ledger sums to the level for every place, and stock is valued at cost.
    assert names(
        stock.crm.conn,
        "SELECT bool_and(l.on_hand = m.total) FROM stock_levels l JOIN"
        " (SELECT variant_id, warehouse_id, sum(quantity) AS total FROM stock_movements GROUP BY 1, 2) m"
        " USING (variant_id, warehouse_id)",
    ) == [True]
    assert clerk.execute("SELECT sku, on_hand, stock_value FROM stock_valuation").fetchall() == [
        ("CHAIR-OAK", d("8.000"), d("320.00"))
    ]
    assert clerk.execute("SELECT on_hand, available FROM product_stock").fetchall() == [(d("8.000"), d("8.000"))]


@TENANT_DB
def test_a_move_below_zero_is_refused_with_a_clear_error_and_changes_nothing(stock: Stock) -> None:
    clerk = stock.as_clerk()
    clerk.execute(MOVE, [stock.variant, stock.main, 5, "receipt"])
    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        clerk.execute(MOVE, [stock.variant, stock.main, -6, "shipment"])
    assert str(refused.value).startswith(
        "insufficient stock of CHAIR-OAK in warehouse MAIN: 5.000 on hand, 0.000 reserved, 5.000 available;"
        " cannot take out 6"
    )
    assert stock.level() == (d("5.000"), d("0.000"), d("5.000"))
    assert stock.ledger() == [("receipt", d("5.000"), d("5.000"))]
    # Nothing was ever received in the annex: refused, and no level row appears there.
    with pytest.raises(psycopg.errors.CheckViolation, match="0 on hand"):
        clerk.execute(MOVE, [stock.variant, stock.annex, -1, "transfer_out"])
    assert stock.level(stock.annex) is None
    # A quantity whose sign contradicts its kind, an unknown item, or no session user: each refused plainly.
    with pytest.raises(psycopg.errors.CheckViolation, match="stock_movements_quantity_sign_matches_kind"):
        clerk.execute(MOVE, [stock.variant, stock.main, 1, "shipment"])
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="unknown product variant"):
        clerk.execute(MOVE, [uuid.uuid4(), stock.main, -1, "shipment"])
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="active CRM user session"):
        stock.tenant.app().execute(MOVE, [stock.variant, stock.main, 1, "receipt"])
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="adjustments need a manager"):
        clerk.execute(MOVE, [stock.variant, stock.main, -1, "adjustment"])
    assert stock.level() == (d("5.000"), d("0.000"), d("5.000"))
    assert names(stock.crm.conn, "SELECT count(*) FROM stock_movements") == [1]


@TENANT_DB
def test_reservations_hold_stock_and_a_shipment_fulfils_them(stock: Stock) -> None:
    clerk = stock.as_clerk()
    clerk.execute(MOVE, [stock.variant, stock.main, 12, "receipt"])
    reservation = names(clerk, "SELECT (stock_reserve(%s, %s, 5)).id", [stock.variant, stock.main])[0]
    assert stock.level() == (d("12.000"), d("5.000"), d("7.000"))
    # Reserved stock is not available to anyone else.
    with pytest.raises(psycopg.errors.CheckViolation, match=r"7\.000 available; cannot reserve 8"):
        clerk.execute("SELECT stock_reserve(%s, %s, 8)", [stock.variant, stock.main])
    with pytest.raises(psycopg.errors.CheckViolation, match=r"7\.000 available; cannot take out 8"):
        clerk.execute(MOVE, [stock.variant, stock.main, -8, "shipment"])
    # Shipping less than the reservation does not fulfil it.
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="does not cover stock reservation"):
        clerk.execute(
            "SELECT stock_move(%s, %s, -3, 'shipment', p_reservation_id => %s)",
            [stock.variant, stock.main, reservation],
        )
    # Shipping the reservation takes it from on_hand and reserved together.
    clerk.execute(
        "SELECT stock_move(%s, %s, -5, 'shipment', p_reservation_id => %s)", [stock.variant, stock.main, reservation]
    )
    assert stock.level() == (d("7.000"), d("0.000"), d("7.000"))
    assert stock.crm.conn.execute(
        "SELECT status, closed_at IS NOT NULL FROM stock_reservations WHERE id = %s", [reservation]
    ).fetchone() == ("fulfilled", True)
    assert names(stock.crm.conn, "SELECT reservation_id FROM stock_movements WHERE kind = 'shipment'") == [reservation]
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="is already fulfilled"):
        clerk.execute(
            "SELECT stock_move(%s, %s, -5, 'shipment', p_reservation_id => %s)",
            [stock.variant, stock.main, reservation],
        )
    # Released and expired reservations give their quantity back.
    held = names(clerk, "SELECT (stock_reserve(%s, %s, 2)).id", [stock.variant, stock.main])[0]
    stale = names(
        clerk,
        "SELECT (stock_reserve(%s, %s, 3, p_expires_at => now() - interval '1 hour')).id",
        [stock.variant, stock.main],
    )[0]
    assert stock.level() == (d("7.000"), d("5.000"), d("2.000"))
    assert names(clerk, "SELECT (stock_release(%s)).status", [held]) == ["released"]
    assert names(clerk, "SELECT stock_expire_reservations()") == [1]
    assert stock.level() == (d("7.000"), d("0.000"), d("7.000"))
    assert names(stock.crm.conn, "SELECT status FROM stock_reservations WHERE id = %s", [stale]) == ["expired"]
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="is already released"):
        clerk.execute("SELECT stock_release(%s)", [held])


@TENANT_DB
def test_the_ledger_is_append_only_and_stock_changes_only_through_the_functions(stock: Stock) -> None:
    clerk = stock.as_clerk()
    clerk.execute(MOVE, [stock.variant, stock.main, 3, "receipt"])
    for statement in (
        "UPDATE stock_movements SET quantity = 300",
        "DELETE FROM stock_movements",
        "UPDATE stock_levels SET on_hand = 300",
        "INSERT INTO stock_levels (variant_id, warehouse_id, on_hand)"
        " SELECT variant_id, warehouse_id, 1 FROM stock_levels",
        "UPDATE stock_reservations SET status = 'released'",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            clerk.execute(statement)
    # The table owner and the database superuser are refused by the trigger.
    for statement in (
        "UPDATE stock_movements SET quantity = 300",
        "DELETE FROM stock_movements",
        "TRUNCATE stock_movements CASCADE",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="stock_movements is append-only"):
            stock.crm.conn.execute(statement)
    owner = stock.tenant.admin()
    owner.execute(f'SET ROLE "{stock.tenant.roles.owner}"')
    owner.execute(
        "SELECT set_config('app.user_id', %s, false), set_config('app.role', 'member', false)", [str(stock.clerk)]
    )
    # As the owner role, FORCEd row-level security has no UPDATE or DELETE policy to offer; TRUNCATE meets the trigger.
    assert owner.execute("DELETE FROM stock_movements").rowcount == 0
    assert owner.execute("UPDATE stock_movements SET quantity = 300").rowcount == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="stock_movements is append-only"):
        owner.execute("TRUNCATE stock_movements CASCADE")
    assert stock.ledger() == [("receipt", d("3.000"), d("3.000"))]
    assert stock.level() == (d("3.000"), d("0.000"), d("3.000"))


@TENANT_DB
def test_concurrent_moves_serialise_on_the_level_and_never_overdraw(stock: Stock) -> None:
    stock.as_clerk().execute(MOVE, [stock.variant, stock.main, 10, "receipt"])
    first, second = stock.as_clerk(), stock.as_clerk()
    second_pid = second.info.backend_pid
    first.execute("BEGIN")
    first.execute(MOVE, [stock.variant, stock.main, -8, "shipment"])  # holds the level row, not committed
    outcome: dict[str, BaseException | None] = {}

    def take_five() -> None:
        try:
            second.execute(MOVE, [stock.variant, stock.main, -5, "shipment"])
            outcome["error"] = None
        except psycopg.Error as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=take_five)
    worker.start()
    watcher = stock.crm.conn
    deadline = time.monotonic() + 30
    while names(watcher, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [second_pid]) != ["Lock"]:
        assert time.monotonic() < deadline, "the second move never waited for the first one's row lock"
        time.sleep(0.05)
    first.execute("COMMIT")
    worker.join(timeout=30)
    assert not worker.is_alive()
    # Re-checked against the committed level (2 left), the second move is refused instead of going to -3.
    assert isinstance(outcome["error"], psycopg.errors.CheckViolation)
    assert stock.level() == (d("2.000"), d("0.000"), d("2.000"))
    assert [q for _, q, _ in stock.ledger()] == [d("10.000"), d("-8.000")]
