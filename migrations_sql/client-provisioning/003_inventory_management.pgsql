-- 003 inventory: product catalogue and variants, price books, warehouses, stock levels with an
-- append-only movement ledger, reservations, suppliers and purchase orders, quotes and sales orders
-- linked to deals.
--
-- Stock changes only through stock_move / stock_reserve / stock_release / stock_expire_reservations:
-- each changes the ledger, the level and the reservation in ONE statement (data-modifying CTEs), with
-- the non-negative rule in the guarded UPDATE itself, so concurrent movers serialise on the level row
-- and can never drive it below zero. The app role may read stock tables but not write them.
-- Same rules as 001: owner role, tenant search_path, no schema names, RLS ENABLEd and FORCEd.

-- ---------------------------------------------------------------------------------------------------
-- Catalogue
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE product_categories (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    parent_id  uuid REFERENCES product_categories (id) ON DELETE RESTRICT,
    name       text NOT NULL CHECK (btrim(name) <> ''),
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
    position   integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS DISTINCT FROM id)
);
CREATE UNIQUE INDEX product_categories_root_name_key ON product_categories (lower(name)) WHERE parent_id IS NULL;
CREATE UNIQUE INDEX product_categories_child_name_key ON product_categories (parent_id, lower(name))
    WHERE parent_id IS NOT NULL;

CREATE TABLE products (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    category_id   uuid REFERENCES product_categories (id) ON DELETE SET NULL,
    code          text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]*$'),
    name          text NOT NULL CHECK (btrim(name) <> ''),
    description   text NOT NULL DEFAULT '',
    -- service: sold but never stocked.
    product_type  text NOT NULL DEFAULT 'stocked' CHECK (product_type IN ('stocked', 'service')),
    unit          text NOT NULL DEFAULT 'each' CHECK (btrim(unit) <> ''),
    tax_rate      numeric(6, 4) NOT NULL DEFAULT 0 CHECK (tax_rate BETWEEN 0 AND 1),
    is_active     boolean NOT NULL DEFAULT true,
    search_vector tsvector GENERATED ALWAYS AS (
                      to_tsvector('simple', coalesce(code, '') || ' ' || coalesce(name, '') || ' '
                                            || coalesce(description, ''))
                  ) STORED,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_category_idx ON products (category_id);
CREATE INDEX products_name_idx ON products (lower(name) text_pattern_ops) WHERE is_active;
CREATE INDEX products_search_idx ON products USING gin (search_vector);

CREATE TABLE product_variants (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    product_id    uuid NOT NULL REFERENCES products (id) ON DELETE RESTRICT,
    sku           text NOT NULL UNIQUE CHECK (sku ~ '^[A-Za-z0-9][A-Za-z0-9._-]*$'),
    name          text NOT NULL DEFAULT '',
    -- Option values, e.g. {"size": "L", "colour": "navy"}.
    attributes    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    barcode       text CHECK (barcode ~ '^[0-9A-Za-z-]{4,64}$'),
    cost_price    numeric(18, 4) NOT NULL DEFAULT 0 CHECK (cost_price >= 0),
    cost_currency text NOT NULL REFERENCES currencies (code),
    weight_grams  integer CHECK (weight_grams >= 0),
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX product_variants_product_idx ON product_variants (product_id);
CREATE UNIQUE INDEX product_variants_barcode_key ON product_variants (barcode) WHERE barcode IS NOT NULL;
-- One variant per option combination of a product.
CREATE UNIQUE INDEX product_variants_attributes_key ON product_variants (product_id, attributes);

CREATE TABLE price_books (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (btrim(name) <> ''),
    currency    text NOT NULL REFERENCES currencies (code),
    is_default  boolean NOT NULL DEFAULT false,
    is_active   boolean NOT NULL DEFAULT true,
    valid_from  date,
    valid_until date,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until >= valid_from),
    -- Target of quotes' (price_book_id, currency) key: a quote is in its price book's currency.
    CONSTRAINT price_books_id_currency_key UNIQUE (id, currency)
);
CREATE UNIQUE INDEX price_books_name_key ON price_books (lower(name));
-- At most one default price book per currency.
CREATE UNIQUE INDEX price_books_default_key ON price_books (currency) WHERE is_default;

CREATE TABLE price_book_entries (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    price_book_id uuid NOT NULL REFERENCES price_books (id) ON DELETE CASCADE,
    variant_id    uuid NOT NULL REFERENCES product_variants (id) ON DELETE CASCADE,
    -- Tiered pricing: the entry with the highest min_quantity not above the ordered quantity applies.
    min_quantity  numeric(18, 3) NOT NULL DEFAULT 1 CHECK (min_quantity > 0),
    unit_price    numeric(18, 4) NOT NULL CHECK (unit_price >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (price_book_id, variant_id, min_quantity)
);
CREATE INDEX price_book_entries_variant_idx ON price_book_entries (variant_id);

-- ---------------------------------------------------------------------------------------------------
-- Warehouses, suppliers, purchasing
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE warehouses (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code         text NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{0,31}$'),
    name         text NOT NULL CHECK (btrim(name) <> ''),
    address      text NOT NULL DEFAULT '',
    country_code text CHECK (country_code ~ '^[A-Z]{2}$'),
    is_active    boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE suppliers (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code               text NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{0,31}$'),
    name               text NOT NULL CHECK (btrim(name) <> ''),
    email              text CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    phone              text NOT NULL DEFAULT '',
    currency           text NOT NULL REFERENCES currencies (code),
    payment_terms_days integer NOT NULL DEFAULT 30 CHECK (payment_terms_days BETWEEN 0 AND 365),
    -- The CRM account of this supplier, when it is one.
    company_id         uuid REFERENCES companies (id) ON DELETE SET NULL,
    is_active          boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX suppliers_name_key ON suppliers (lower(name));

CREATE SEQUENCE purchase_order_number_seq AS bigint;
CREATE TABLE purchase_orders (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    number       text NOT NULL UNIQUE DEFAULT 'PO-' || lpad(nextval('purchase_order_number_seq')::text, 6, '0'),
    supplier_id  uuid NOT NULL REFERENCES suppliers (id) ON DELETE RESTRICT,
    warehouse_id uuid NOT NULL REFERENCES warehouses (id) ON DELETE RESTRICT,
    currency     text NOT NULL REFERENCES currencies (code),
    status       text NOT NULL DEFAULT 'draft'
                 CHECK (status IN ('draft', 'ordered', 'partially_received', 'received', 'cancelled')),
    ordered_at   timestamptz,
    expected_on  date,
    notes        text NOT NULL DEFAULT '',
    created_by   uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (status IN ('draft', 'cancelled') OR ordered_at IS NOT NULL)
);
CREATE INDEX purchase_orders_supplier_idx ON purchase_orders (supplier_id, created_at DESC);
CREATE INDEX purchase_orders_open_idx ON purchase_orders (expected_on) WHERE status IN ('ordered', 'partially_received');
CREATE INDEX purchase_orders_warehouse_idx ON purchase_orders (warehouse_id);

CREATE TABLE purchase_order_lines (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    purchase_order_id uuid NOT NULL REFERENCES purchase_orders (id) ON DELETE CASCADE,
    position          integer NOT NULL CHECK (position >= 0),
    variant_id        uuid NOT NULL REFERENCES product_variants (id) ON DELETE RESTRICT,
    quantity          numeric(18, 3) NOT NULL CHECK (quantity > 0),
    unit_cost         numeric(18, 4) NOT NULL CHECK (unit_cost >= 0),
    line_total        numeric(18, 2) GENERATED ALWAYS AS (round(quantity * unit_cost, 2)) STORED,
    UNIQUE (purchase_order_id, position),
    -- Target of the ledger's (purchase_order_line_id, variant_id) key: receipts are of the ordered item.
    CONSTRAINT purchase_order_lines_id_variant_key UNIQUE (id, variant_id)
);
CREATE INDEX purchase_order_lines_variant_idx ON purchase_order_lines (variant_id);

-- ---------------------------------------------------------------------------------------------------
-- Quotes and sales orders (linked to deals)
-- ---------------------------------------------------------------------------------------------------

CREATE SEQUENCE quote_number_seq AS bigint;
CREATE TABLE quotes (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    number        text NOT NULL UNIQUE DEFAULT 'Q-' || lpad(nextval('quote_number_seq')::text, 6, '0'),
    owner_id      uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    is_private    boolean NOT NULL DEFAULT false,
    deal_id       uuid REFERENCES deals (id) ON DELETE SET NULL,
    company_id    uuid REFERENCES companies (id) ON DELETE SET NULL,
    contact_id    uuid REFERENCES contacts (id) ON DELETE SET NULL,
    price_book_id uuid,
    currency      text NOT NULL REFERENCES currencies (code),
    status        text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'sent', 'accepted', 'rejected', 'expired')),
    valid_until   date,
    terms         text NOT NULL DEFAULT '',
    sent_at       timestamptz,
    accepted_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT quotes_price_book_currency_fkey FOREIGN KEY (price_book_id, currency)
        REFERENCES price_books (id, currency) ON DELETE RESTRICT,
    CHECK (status = 'draft' OR sent_at IS NOT NULL),
    CHECK ((status = 'accepted') = (accepted_at IS NOT NULL))
);
CREATE INDEX quotes_deal_idx ON quotes (deal_id) WHERE deal_id IS NOT NULL;
CREATE INDEX quotes_owner_idx ON quotes (owner_id, created_at DESC);
CREATE INDEX quotes_company_idx ON quotes (company_id) WHERE company_id IS NOT NULL;
CREATE INDEX quotes_price_book_idx ON quotes (price_book_id) WHERE price_book_id IS NOT NULL;

CREATE TABLE quote_lines (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    quote_id         uuid NOT NULL REFERENCES quotes (id) ON DELETE CASCADE,
    position         integer NOT NULL CHECK (position >= 0),
    variant_id       uuid NOT NULL REFERENCES product_variants (id) ON DELETE RESTRICT,
    description      text NOT NULL DEFAULT '',
    quantity         numeric(18, 3) NOT NULL CHECK (quantity > 0),
    unit_price       numeric(18, 4) NOT NULL CHECK (unit_price >= 0),
    discount_percent numeric(5, 2) NOT NULL DEFAULT 0 CHECK (discount_percent BETWEEN 0 AND 100),
    tax_rate         numeric(6, 4) NOT NULL DEFAULT 0 CHECK (tax_rate BETWEEN 0 AND 1),
    line_subtotal    numeric(18, 2) GENERATED ALWAYS AS (
                         round(quantity * unit_price * (100 - discount_percent) / 100, 2)) STORED,
    line_tax         numeric(18, 2) GENERATED ALWAYS AS (
                         round(quantity * unit_price * (100 - discount_percent) / 100 * tax_rate, 2)) STORED,
    UNIQUE (quote_id, position)
);
CREATE INDEX quote_lines_variant_idx ON quote_lines (variant_id);

CREATE SEQUENCE sales_order_number_seq AS bigint;
CREATE TABLE sales_orders (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    number       text NOT NULL UNIQUE DEFAULT 'SO-' || lpad(nextval('sales_order_number_seq')::text, 6, '0'),
    owner_id     uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    is_private   boolean NOT NULL DEFAULT false,
    -- An accepted quote becomes at most one order.
    quote_id     uuid UNIQUE REFERENCES quotes (id) ON DELETE SET NULL,
    deal_id      uuid REFERENCES deals (id) ON DELETE SET NULL,
    company_id   uuid REFERENCES companies (id) ON DELETE SET NULL,
    contact_id   uuid REFERENCES contacts (id) ON DELETE SET NULL,
    warehouse_id uuid NOT NULL REFERENCES warehouses (id) ON DELETE RESTRICT,
    currency     text NOT NULL REFERENCES currencies (code),
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'confirmed', 'fulfilled', 'cancelled')),
    confirmed_at timestamptz,
    fulfilled_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (status IN ('draft', 'cancelled') OR confirmed_at IS NOT NULL),
    CHECK ((status = 'fulfilled') = (fulfilled_at IS NOT NULL))
);
CREATE INDEX sales_orders_deal_idx ON sales_orders (deal_id) WHERE deal_id IS NOT NULL;
CREATE INDEX sales_orders_owner_idx ON sales_orders (owner_id, created_at DESC);
CREATE INDEX sales_orders_company_idx ON sales_orders (company_id) WHERE company_id IS NOT NULL;
CREATE INDEX sales_orders_open_idx ON sales_orders (warehouse_id) WHERE status = 'confirmed';

CREATE TABLE sales_order_lines (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sales_order_id   uuid NOT NULL REFERENCES sales_orders (id) ON DELETE CASCADE,
    position         integer NOT NULL CHECK (position >= 0),
    variant_id       uuid NOT NULL REFERENCES product_variants (id) ON DELETE RESTRICT,
    description      text NOT NULL DEFAULT '',
    quantity         numeric(18, 3) NOT NULL CHECK (quantity > 0),
    unit_price       numeric(18, 4) NOT NULL CHECK (unit_price >= 0),
    discount_percent numeric(5, 2) NOT NULL DEFAULT 0 CHECK (discount_percent BETWEEN 0 AND 100),
    tax_rate         numeric(6, 4) NOT NULL DEFAULT 0 CHECK (tax_rate BETWEEN 0 AND 1),
    line_subtotal    numeric(18, 2) GENERATED ALWAYS AS (
                         round(quantity * unit_price * (100 - discount_percent) / 100, 2)) STORED,
    line_tax         numeric(18, 2) GENERATED ALWAYS AS (
                         round(quantity * unit_price * (100 - discount_percent) / 100 * tax_rate, 2)) STORED,
    UNIQUE (sales_order_id, position),
    -- Target of (sales_order_line_id, variant_id) keys: reservations and shipments are of the ordered item.
    CONSTRAINT sales_order_lines_id_variant_key UNIQUE (id, variant_id)
);
CREATE INDEX sales_order_lines_variant_idx ON sales_order_lines (variant_id);

-- ---------------------------------------------------------------------------------------------------
-- Stock: levels, reservations, the movement ledger
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE stock_levels (
    variant_id    uuid NOT NULL REFERENCES product_variants (id) ON DELETE RESTRICT,
    warehouse_id  uuid NOT NULL REFERENCES warehouses (id) ON DELETE RESTRICT,
    on_hand       numeric(18, 3) NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved      numeric(18, 3) NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    available     numeric(18, 3) GENERATED ALWAYS AS (on_hand - reserved) STORED,
    reorder_point numeric(18, 3) CHECK (reorder_point >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (variant_id, warehouse_id),
    CONSTRAINT stock_levels_reserved_within_on_hand CHECK (reserved <= on_hand)
);
-- Stock by product is by variant (the primary key); this serves "what is in this warehouse".
CREATE INDEX stock_levels_warehouse_idx ON stock_levels (warehouse_id, variant_id);
CREATE INDEX stock_levels_reorder_idx ON stock_levels (warehouse_id) WHERE available <= reorder_point;

CREATE TABLE stock_reservations (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    variant_id          uuid NOT NULL,
    warehouse_id        uuid NOT NULL,
    quantity            numeric(18, 3) NOT NULL CHECK (quantity > 0),
    deal_id             uuid REFERENCES deals (id) ON DELETE SET NULL,
    sales_order_line_id uuid,
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'fulfilled', 'released', 'expired')),
    expires_at          timestamptz,
    note                text NOT NULL DEFAULT '',
    reserved_by         uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    closed_at           timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (variant_id, warehouse_id) REFERENCES stock_levels (variant_id, warehouse_id) ON DELETE RESTRICT,
    FOREIGN KEY (sales_order_line_id, variant_id) REFERENCES sales_order_lines (id, variant_id) ON DELETE RESTRICT,
    CHECK ((status = 'active') = (closed_at IS NULL)),
    -- Target of the ledger's reservation key: a fulfilment moves the reserved item out of its warehouse.
    CONSTRAINT stock_reservations_id_item_key UNIQUE (id, variant_id, warehouse_id)
);
CREATE INDEX stock_reservations_active_idx ON stock_reservations (variant_id, warehouse_id) WHERE status = 'active';
CREATE INDEX stock_reservations_expiry_idx ON stock_reservations (expires_at) WHERE status = 'active';
CREATE INDEX stock_reservations_deal_idx ON stock_reservations (deal_id) WHERE deal_id IS NOT NULL;
CREATE INDEX stock_reservations_order_line_idx ON stock_reservations (sales_order_line_id)
    WHERE sales_order_line_id IS NOT NULL;

CREATE TABLE stock_movements (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    variant_id             uuid NOT NULL,
    warehouse_id           uuid NOT NULL,
    kind                   text NOT NULL
                           CHECK (kind IN ('receipt', 'shipment', 'adjustment', 'transfer_in', 'transfer_out', 'return')),
    quantity               numeric(18, 3) NOT NULL,
    -- on_hand of the level right after this movement: the ledger can be checked against the level.
    balance_after          numeric(18, 3) NOT NULL CHECK (balance_after >= 0),
    unit_cost              numeric(18, 4) CHECK (unit_cost >= 0),
    note                   text NOT NULL DEFAULT '',
    purchase_order_line_id uuid,
    sales_order_line_id    uuid,
    reservation_id         uuid,
    moved_by               uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    moved_at               timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (variant_id, warehouse_id) REFERENCES stock_levels (variant_id, warehouse_id) ON DELETE RESTRICT,
    FOREIGN KEY (purchase_order_line_id, variant_id)
        REFERENCES purchase_order_lines (id, variant_id) ON DELETE RESTRICT,
    FOREIGN KEY (sales_order_line_id, variant_id) REFERENCES sales_order_lines (id, variant_id) ON DELETE RESTRICT,
    FOREIGN KEY (reservation_id, variant_id, warehouse_id)
        REFERENCES stock_reservations (id, variant_id, warehouse_id) ON DELETE RESTRICT,
    CONSTRAINT stock_movements_quantity_sign_matches_kind CHECK (
        quantity <> 0
        AND CASE kind
                WHEN 'receipt' THEN quantity > 0
                WHEN 'return' THEN quantity > 0
                WHEN 'transfer_in' THEN quantity > 0
                WHEN 'shipment' THEN quantity < 0
                WHEN 'transfer_out' THEN quantity < 0
                ELSE true
            END),
    CHECK (purchase_order_line_id IS NULL OR kind = 'receipt'),
    CHECK (reservation_id IS NULL OR kind = 'shipment')
);
-- A variant's history in a warehouse, in ledger order.
CREATE INDEX stock_movements_item_idx ON stock_movements (variant_id, warehouse_id, id);
CREATE INDEX stock_movements_warehouse_idx ON stock_movements (warehouse_id, moved_at);
CREATE INDEX stock_movements_po_line_idx ON stock_movements (purchase_order_line_id)
    WHERE purchase_order_line_id IS NOT NULL;
CREATE INDEX stock_movements_so_line_idx ON stock_movements (sales_order_line_id) WHERE sales_order_line_id IS NOT NULL;
CREATE INDEX stock_movements_reservation_idx ON stock_movements (reservation_id) WHERE reservation_id IS NOT NULL;
CREATE INDEX stock_movements_moved_by_idx ON stock_movements (moved_by);
COMMENT ON TABLE stock_movements IS 'Append-only stock ledger: corrections are new movements, never edits.';

CREATE TRIGGER stock_movements_append_only BEFORE UPDATE OR DELETE ON stock_movements
    FOR EACH ROW EXECUTE FUNCTION forbid_update_delete();
CREATE TRIGGER stock_movements_no_truncate BEFORE TRUNCATE ON stock_movements
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_update_delete();

-- ---------------------------------------------------------------------------------------------------
-- Stock functions
-- ---------------------------------------------------------------------------------------------------

-- Raises the clear error for a refused stock change. Called only on the refusal path (inside COALESCE),
-- with the facts gathered by the caller; returns its first argument's type so COALESCE type-checks.
CREATE FUNCTION stock_refuse(p_result anyelement, p_facts jsonb) RETURNS anyelement
LANGUAGE plpgsql AS $$
DECLARE
    v_op text := p_facts ->> 'op';
    v_quantity numeric := (p_facts ->> 'quantity')::numeric;
    v_reservation text := p_facts ->> 'reservation_id';
    v_status text := p_facts ->> 'reservation_status';
BEGIN
    IF p_facts ->> 'role' IS NULL THEN
        RAISE EXCEPTION 'stock changes need an active CRM user session (app.user_id with its app.role)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF v_op IN ('move', 'reserve') THEN
        IF p_facts ->> 'sku' IS NULL THEN
            RAISE EXCEPTION 'unknown product variant %', p_facts ->> 'variant_id' USING ERRCODE = 'foreign_key_violation';
        END IF;
        IF p_facts ->> 'warehouse' IS NULL THEN
            RAISE EXCEPTION 'unknown warehouse %', p_facts ->> 'warehouse_id' USING ERRCODE = 'foreign_key_violation';
        END IF;
        IF v_quantity IS NULL OR v_quantity = 0 OR (v_op = 'reserve' AND v_quantity < 0) THEN
            RAISE EXCEPTION 'a stock % needs a % quantity, not %', v_op,
                CASE v_op WHEN 'reserve' THEN 'positive' ELSE 'non-zero' END, coalesce(v_quantity::text, 'NULL')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    IF v_op = 'move' AND p_facts ->> 'kind' = 'adjustment' AND p_facts ->> 'role' NOT IN ('admin', 'manager') THEN
        RAISE EXCEPTION 'stock adjustments need a manager or an admin' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF v_reservation IS NOT NULL THEN
        IF v_status IS NULL THEN
            RAISE EXCEPTION 'stock reservation % does not exist', v_reservation USING ERRCODE = 'no_data_found';
        END IF;
        IF v_status <> 'active' THEN
            RAISE EXCEPTION 'stock reservation % is already %', v_reservation, v_status
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF v_op = 'release' AND p_facts ->> 'new_status' NOT IN ('released', 'expired') THEN
            RAISE EXCEPTION 'a reservation is closed as released or expired, not %', p_facts ->> 'new_status'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF v_op = 'move' THEN
            IF NOT (p_facts ->> 'reservation_matches')::boolean THEN
                RAISE EXCEPTION 'stock reservation % is for another variant or warehouse', v_reservation
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            IF v_quantity >= 0 OR -v_quantity < (p_facts ->> 'reservation_quantity')::numeric THEN
                RAISE EXCEPTION 'a shipment of % does not cover stock reservation % of %', -v_quantity, v_reservation,
                    p_facts ->> 'reservation_quantity'
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Release the reservation and reserve the smaller quantity, or ship all of it.';
            END IF;
        END IF;
    END IF;
    IF v_op IN ('move', 'reserve') THEN
        RAISE EXCEPTION 'insufficient stock of % in warehouse %: % on hand, % reserved, % available; cannot % %',
            p_facts ->> 'sku', p_facts ->> 'warehouse', coalesce(p_facts ->> 'on_hand', '0'),
            coalesce(p_facts ->> 'reserved', '0'),
            coalesce(p_facts ->> 'available', '0'),
            CASE v_op WHEN 'reserve' THEN 'reserve' ELSE 'take out' END, abs(v_quantity)
            USING ERRCODE = 'check_violation',
                  HINT = 'Stock never goes negative and reserved stock is kept for its reservation.';
    END IF;
    RAISE EXCEPTION 'stock % refused: %', v_op, p_facts USING ERRCODE = 'object_not_in_prerequisite_state';
END
$$;

-- Moves stock: one ledger row and the level change in a single statement. p_quantity is signed
-- (receipts and returns in, shipments out; adjustments either way, managers and admins only). With
-- p_reservation_id, a shipment fulfils that reservation (covering all of it) and frees its reserved
-- quantity. Refuses, changing nothing, when the move would take on_hand below zero or below what is
-- reserved for others.
CREATE FUNCTION stock_move(
    p_variant_id uuid,
    p_warehouse_id uuid,
    p_quantity numeric,
    p_kind text,
    p_unit_cost numeric DEFAULT NULL,
    p_note text DEFAULT '',
    p_purchase_order_line_id uuid DEFAULT NULL,
    p_sales_order_line_id uuid DEFAULT NULL,
    p_reservation_id uuid DEFAULT NULL
) RETURNS stock_movements
LANGUAGE sql VOLATILE SECURITY DEFINER
BEGIN ATOMIC
    -- An inflow to a new place creates its level row; an outflow from nowhere finds none and is refused.
    INSERT INTO stock_levels (variant_id, warehouse_id)
    SELECT p_variant_id, p_warehouse_id
     WHERE p_quantity > 0
       AND app_current_role() IS NOT NULL
       AND EXISTS (SELECT 1 FROM product_variants v WHERE v.id = p_variant_id)
       AND EXISTS (SELECT 1 FROM warehouses w WHERE w.id = p_warehouse_id)
    ON CONFLICT (variant_id, warehouse_id) DO NOTHING;
    WITH fulfilled AS (
        UPDATE stock_reservations r
           SET status = 'fulfilled', closed_at = now(), updated_at = now()
         WHERE r.id = p_reservation_id
           AND r.status = 'active'
           AND r.variant_id = p_variant_id
           AND r.warehouse_id = p_warehouse_id
           AND p_kind = 'shipment'
           AND -p_quantity >= r.quantity
        RETURNING r.quantity
    ), level AS (
        UPDATE stock_levels l
           SET on_hand = l.on_hand + p_quantity,
               reserved = l.reserved - coalesce((SELECT f.quantity FROM fulfilled f), 0),
               updated_at = now()
         WHERE l.variant_id = p_variant_id
           AND l.warehouse_id = p_warehouse_id
           AND p_quantity <> 0
           AND (p_reservation_id IS NULL OR EXISTS (SELECT 1 FROM fulfilled))
           AND (p_kind <> 'adjustment' OR app_current_role() IN ('admin', 'manager'))
           AND app_current_role() IS NOT NULL
           -- The non-negative rule, re-checked on the latest row version if a concurrent move got there first.
           AND l.on_hand + p_quantity >= l.reserved - coalesce((SELECT f.quantity FROM fulfilled f), 0)
        RETURNING l.on_hand
    ), movement AS (
        INSERT INTO stock_movements AS m (
            variant_id, warehouse_id, kind, quantity, balance_after, unit_cost, note,
            purchase_order_line_id, sales_order_line_id, reservation_id, moved_by)
        SELECT p_variant_id, p_warehouse_id, p_kind, p_quantity, level.on_hand, p_unit_cost, coalesce(p_note, ''),
               p_purchase_order_line_id, p_sales_order_line_id, p_reservation_id, app_current_user_id()
          FROM level
        RETURNING m
    )
    SELECT coalesce(
        (SELECT movement.m FROM movement),
        stock_refuse(NULL::stock_movements, jsonb_build_object(
            'op', 'move',
            'kind', p_kind,
            'role', CASE WHEN app_identity_valid() THEN app_current_role() END,
            'variant_id', p_variant_id,
            'warehouse_id', p_warehouse_id,
            'quantity', p_quantity,
            'sku', (SELECT v.sku FROM product_variants v WHERE v.id = p_variant_id),
            'warehouse', (SELECT w.code FROM warehouses w WHERE w.id = p_warehouse_id),
            'on_hand', (SELECT l.on_hand FROM stock_levels l
                         WHERE l.variant_id = p_variant_id AND l.warehouse_id = p_warehouse_id),
            'reserved', (SELECT l.reserved FROM stock_levels l
                          WHERE l.variant_id = p_variant_id AND l.warehouse_id = p_warehouse_id),
            'available', (SELECT l.available FROM stock_levels l
                           WHERE l.variant_id = p_variant_id AND l.warehouse_id = p_warehouse_id),
            'reservation_id', p_reservation_id,
            'reservation_status', (SELECT r.status FROM stock_reservations r WHERE r.id = p_reservation_id),
            'reservation_quantity', (SELECT r.quantity FROM stock_reservations r WHERE r.id = p_reservation_id),
            'reservation_matches', (SELECT r.variant_id = p_variant_id AND r.warehouse_id = p_warehouse_id
                                      FROM stock_reservations r WHERE r.id = p_reservation_id))));
END;
COMMENT ON FUNCTION stock_move(uuid, uuid, numeric, text, numeric, text, uuid, uuid, uuid) IS
    'Records a stock movement and updates the level in one statement; refuses to go negative.';

-- Reserves available stock (for a deal or an order line): the reservation and the level's reserved
-- quantity change together, refused when less than p_quantity is available.
CREATE FUNCTION stock_reserve(
    p_variant_id uuid,
    p_warehouse_id uuid,
    p_quantity numeric,
    p_deal_id uuid DEFAULT NULL,
    p_sales_order_line_id uuid DEFAULT NULL,
    p_expires_at timestamptz DEFAULT NULL,
    p_note text DEFAULT ''
) RETURNS stock_reservations
LANGUAGE sql VOLATILE SECURITY DEFINER
BEGIN ATOMIC
    WITH level AS (
        UPDATE stock_levels l
           SET reserved = l.reserved + p_quantity, updated_at = now()
         WHERE l.variant_id = p_variant_id
           AND l.warehouse_id = p_warehouse_id
           AND p_quantity > 0
           AND app_current_role() IS NOT NULL
           AND l.on_hand - l.reserved >= p_quantity
        RETURNING l.variant_id
    ), reservation AS (
        INSERT INTO stock_reservations AS r (
            variant_id, warehouse_id, quantity, deal_id, sales_order_line_id, expires_at, note, reserved_by)
        SELECT p_variant_id, p_warehouse_id, p_quantity, p_deal_id, p_sales_order_line_id, p_expires_at,
               coalesce(p_note, ''), app_current_user_id()
          FROM level
        RETURNING r
    )
    SELECT coalesce(
        (SELECT reservation.r FROM reservation),
        stock_refuse(NULL::stock_reservations, jsonb_build_object(
            'op', 'reserve',
            'role', CASE WHEN app_identity_valid() THEN app_current_role() END,
            'variant_id', p_variant_id,
            'warehouse_id', p_warehouse_id,
            'quantity', p_quantity,
            'sku', (SELECT v.sku FROM product_variants v WHERE v.id = p_variant_id),
            'warehouse', (SELECT w.code FROM warehouses w WHERE w.id = p_warehouse_id),
            'on_hand', (SELECT l.on_hand FROM stock_levels l
                         WHERE l.variant_id = p_variant_id AND l.warehouse_id = p_warehouse_id),
            'reserved', (SELECT l.reserved FROM stock_levels l
                          WHERE l.variant_id = p_variant_id AND l.warehouse_id = p_warehouse_id),
            'available', (SELECT l.available FROM stock_levels l
                           WHERE l.variant_id = p_variant_id AND l.warehouse_id = p_warehouse_id))));
END;

-- Closes an active reservation without shipping it (released by a user, or expired) and frees its quantity.
CREATE FUNCTION stock_release(p_reservation_id uuid, p_status text DEFAULT 'released') RETURNS stock_reservations
LANGUAGE sql VOLATILE SECURITY DEFINER
BEGIN ATOMIC
    WITH closed AS (
        UPDATE stock_reservations r
           SET status = p_status, closed_at = now(), updated_at = now()
         WHERE r.id = p_reservation_id
           AND r.status = 'active'
           AND p_status IN ('released', 'expired')
           AND app_current_role() IS NOT NULL
        RETURNING r
    ), level AS (
        UPDATE stock_levels l
           SET reserved = l.reserved - (c.r).quantity, updated_at = now()
          FROM closed c
         WHERE l.variant_id = (c.r).variant_id AND l.warehouse_id = (c.r).warehouse_id
        RETURNING l.variant_id
    )
    SELECT coalesce(
        (SELECT c.r FROM closed c),
        stock_refuse(NULL::stock_reservations, jsonb_build_object(
            'op', 'release',
            'role', CASE WHEN app_identity_valid() THEN app_current_role() END,
            'new_status', p_status,
            'reservation_id', p_reservation_id,
            'reservation_status', (SELECT r.status FROM stock_reservations r WHERE r.id = p_reservation_id))));
END;

-- Expires every active reservation past its expires_at (for a periodic job); returns how many.
CREATE FUNCTION stock_expire_reservations() RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
BEGIN ATOMIC
    WITH expired AS (
        UPDATE stock_reservations r
           SET status = 'expired', closed_at = now(), updated_at = now()
         WHERE r.status = 'active'
           AND r.expires_at <= now()
           AND app_current_role() IS NOT NULL
        RETURNING r.variant_id, r.warehouse_id, r.quantity
    ), per_level AS (
        SELECT e.variant_id, e.warehouse_id, sum(e.quantity) AS quantity
          FROM expired e
         GROUP BY e.variant_id, e.warehouse_id
    ), level AS (
        UPDATE stock_levels l
           SET reserved = l.reserved - p.quantity, updated_at = now()
          FROM per_level p
         WHERE l.variant_id = p.variant_id AND l.warehouse_id = p.warehouse_id
        RETURNING l.variant_id
    )
    SELECT count(*) FROM expired;
END;

-- ---------------------------------------------------------------------------------------------------
-- Visibility helpers for lines
-- ---------------------------------------------------------------------------------------------------

-- Both run as the owner role under the FORCEd policies of quotes / sales_orders.
CREATE FUNCTION is_quote_visible(p_quote uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT EXISTS (SELECT 1 FROM quotes q WHERE q.id = p_quote);
END;

CREATE FUNCTION can_write_quote(p_quote uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT EXISTS (SELECT 1 FROM quotes q WHERE q.id = p_quote AND can_write_record(q.owner_id));
END;

CREATE FUNCTION is_sales_order_visible(p_order uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT EXISTS (SELECT 1 FROM sales_orders o WHERE o.id = p_order);
END;

CREATE FUNCTION can_write_sales_order(p_order uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT EXISTS (SELECT 1 FROM sales_orders o WHERE o.id = p_order AND can_write_record(o.owner_id));
END;

-- ---------------------------------------------------------------------------------------------------
-- updated_at triggers
-- ---------------------------------------------------------------------------------------------------

CREATE TRIGGER product_categories_updated_at BEFORE UPDATE ON product_categories
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER products_updated_at BEFORE UPDATE ON products FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER product_variants_updated_at BEFORE UPDATE ON product_variants
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER price_books_updated_at BEFORE UPDATE ON price_books FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER price_book_entries_updated_at BEFORE UPDATE ON price_book_entries
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER warehouses_updated_at BEFORE UPDATE ON warehouses FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER suppliers_updated_at BEFORE UPDATE ON suppliers FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER purchase_orders_updated_at BEFORE UPDATE ON purchase_orders
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER quotes_updated_at BEFORE UPDATE ON quotes FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER sales_orders_updated_at BEFORE UPDATE ON sales_orders FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------------------

CREATE VIEW stock_valuation WITH (security_invoker = true) AS
SELECT w.id AS warehouse_id,
       w.code AS warehouse_code,
       p.id AS product_id,
       p.name AS product_name,
       v.id AS variant_id,
       v.sku,
       s.on_hand,
       s.reserved,
       s.available,
       v.cost_price AS unit_cost,
       v.cost_currency AS currency,
       round(s.on_hand * v.cost_price, 2) AS stock_value
  FROM stock_levels s
  JOIN product_variants v ON v.id = s.variant_id
  JOIN products p ON p.id = v.product_id
  JOIN warehouses w ON w.id = s.warehouse_id;
COMMENT ON VIEW stock_valuation IS 'Stock per warehouse and variant at standard cost (variant cost_price).';

CREATE VIEW product_stock WITH (security_invoker = true) AS
SELECT p.id AS product_id,
       p.code,
       p.name,
       coalesce(sum(s.on_hand), 0) AS on_hand,
       coalesce(sum(s.reserved), 0) AS reserved,
       coalesce(sum(s.available), 0) AS available
  FROM products p
  LEFT JOIN product_variants v ON v.product_id = p.id
  LEFT JOIN stock_levels s ON s.variant_id = v.id
 GROUP BY p.id, p.code, p.name;

CREATE VIEW quote_totals WITH (security_invoker = true) AS
SELECT q.id AS quote_id,
       q.number,
       q.deal_id,
       q.currency,
       count(l.id) AS line_count,
       coalesce(sum(l.line_subtotal), 0) AS subtotal,
       coalesce(sum(l.line_tax), 0) AS tax,
       coalesce(sum(l.line_subtotal + l.line_tax), 0) AS total
  FROM quotes q
  LEFT JOIN quote_lines l ON l.quote_id = q.id
 GROUP BY q.id, q.number, q.deal_id, q.currency;

-- Received quantity per purchase order line, from the ledger (the single source of truth).
CREATE VIEW purchase_order_line_receipts WITH (security_invoker = true) AS
SELECT pl.id AS purchase_order_line_id,
       pl.purchase_order_id,
       pl.variant_id,
       pl.quantity AS ordered,
       coalesce(sum(m.quantity), 0) AS received,
       greatest(pl.quantity - coalesce(sum(m.quantity), 0), 0) AS outstanding
  FROM purchase_order_lines pl
  LEFT JOIN stock_movements m ON m.purchase_order_line_id = pl.id
 GROUP BY pl.id, pl.purchase_order_id, pl.variant_id, pl.quantity;

-- ---------------------------------------------------------------------------------------------------
-- Row-level security
-- ---------------------------------------------------------------------------------------------------

-- Catalogue, warehouses, suppliers, purchasing: every active user reads; managers and admins write.
ALTER TABLE product_categories ENABLE ROW LEVEL SECURITY;
ALTER TABLE product_categories FORCE ROW LEVEL SECURITY;
CREATE POLICY product_categories_identity ON product_categories AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY product_categories_select ON product_categories FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY product_categories_write ON product_categories FOR ALL
    USING (app_current_role() IN ('admin', 'manager')) WITH CHECK (app_current_role() IN ('admin', 'manager'));

ALTER TABLE products ENABLE ROW LEVEL SECURITY;
ALTER TABLE products FORCE ROW LEVEL SECURITY;
CREATE POLICY products_identity ON products AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY products_select ON products FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY products_write ON products FOR ALL
    USING (app_current_role() IN ('admin', 'manager')) WITH CHECK (app_current_role() IN ('admin', 'manager'));

ALTER TABLE product_variants ENABLE ROW LEVEL SECURITY;
ALTER TABLE product_variants FORCE ROW LEVEL SECURITY;
CREATE POLICY product_variants_identity ON product_variants AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY product_variants_select ON product_variants FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY product_variants_write ON product_variants FOR ALL
    USING (app_current_role() IN ('admin', 'manager')) WITH CHECK (app_current_role() IN ('admin', 'manager'));

ALTER TABLE price_books ENABLE ROW LEVEL SECURITY;
ALTER TABLE price_books FORCE ROW LEVEL SECURITY;
CREATE POLICY price_books_identity ON price_books AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY price_books_select ON price_books FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY price_books_write ON price_books FOR ALL
    USING (app_current_role() IN ('admin', 'manager')) WITH CHECK (app_current_role() IN ('admin', 'manager'));

ALTER TABLE price_book_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE price_book_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY price_book_entries_identity ON price_book_entries AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY price_book_entries_select ON price_book_entries FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY price_book_entries_write ON price_book_entries FOR ALL
    USING (app_current_role() IN ('admin', 'manager')) WITH CHECK (app_current_role() IN ('admin', 'manager'));

ALTER TABLE warehouses ENABLE ROW LEVEL SECURITY;
ALTER TABLE warehouses FORCE ROW LEVEL SECURITY;
CREATE POLICY warehouses_identity ON warehouses AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY warehouses_select ON warehouses FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY warehouses_write ON warehouses FOR ALL
    USING (app_current_role() IN ('admin', 'manager')) WITH CHECK (app_current_role() IN ('admin', 'manager'));

ALTER TABLE suppliers ENABLE ROW LEVEL SECURITY;
ALTER TABLE suppliers FORCE ROW LEVEL SECURITY;
CREATE POLICY suppliers_identity ON suppliers AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY suppliers_select ON suppliers FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY suppliers_write ON suppliers FOR ALL
    USING (app_current_role() IN ('admin', 'manager')) WITH CHECK (app_current_role() IN ('admin', 'manager'));

ALTER TABLE purchase_orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE purchase_orders FORCE ROW LEVEL SECURITY;
CREATE POLICY purchase_orders_identity ON purchase_orders AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY purchase_orders_select ON purchase_orders FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY purchase_orders_write ON purchase_orders FOR ALL
    USING (app_current_role() IN ('admin', 'manager')) WITH CHECK (app_current_role() IN ('admin', 'manager'));

ALTER TABLE purchase_order_lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE purchase_order_lines FORCE ROW LEVEL SECURITY;
CREATE POLICY purchase_order_lines_identity ON purchase_order_lines AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY purchase_order_lines_select ON purchase_order_lines FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY purchase_order_lines_write ON purchase_order_lines FOR ALL
    USING (app_current_role() IN ('admin', 'manager')) WITH CHECK (app_current_role() IN ('admin', 'manager'));

-- Stock: every active user reads; writes come only from the stock functions (the app has no write
-- grant), which run as the owner role and are held to these policies too.
ALTER TABLE stock_levels ENABLE ROW LEVEL SECURITY;
ALTER TABLE stock_levels FORCE ROW LEVEL SECURITY;
CREATE POLICY stock_levels_identity ON stock_levels AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY stock_levels_all ON stock_levels FOR ALL
    USING (app_current_role() IS NOT NULL) WITH CHECK (app_current_role() IS NOT NULL);

ALTER TABLE stock_reservations ENABLE ROW LEVEL SECURITY;
ALTER TABLE stock_reservations FORCE ROW LEVEL SECURITY;
CREATE POLICY stock_reservations_identity ON stock_reservations AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY stock_reservations_all ON stock_reservations FOR ALL
    USING (app_current_role() IS NOT NULL) WITH CHECK (app_current_role() IS NOT NULL);

ALTER TABLE stock_movements ENABLE ROW LEVEL SECURITY;
ALTER TABLE stock_movements FORCE ROW LEVEL SECURITY;
CREATE POLICY stock_movements_identity ON stock_movements AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY stock_movements_select ON stock_movements FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY stock_movements_insert ON stock_movements FOR INSERT
    WITH CHECK (moved_by = app_current_user_id() AND app_current_role() IS NOT NULL);

-- Quotes and orders are owned records, like deals; their lines follow the parent.
ALTER TABLE quotes ENABLE ROW LEVEL SECURITY;
ALTER TABLE quotes FORCE ROW LEVEL SECURITY;
CREATE POLICY quotes_identity ON quotes AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY quotes_select ON quotes FOR SELECT USING (is_record_visible(owner_id, is_private));
CREATE POLICY quotes_insert ON quotes FOR INSERT
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, contact_id, NULL, deal_id));
CREATE POLICY quotes_update ON quotes FOR UPDATE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id))
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, contact_id, NULL, deal_id));
CREATE POLICY quotes_delete ON quotes FOR DELETE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id));

ALTER TABLE quote_lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE quote_lines FORCE ROW LEVEL SECURITY;
CREATE POLICY quote_lines_identity ON quote_lines AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY quote_lines_select ON quote_lines FOR SELECT USING (is_quote_visible(quote_id));
CREATE POLICY quote_lines_write ON quote_lines FOR ALL
    USING (can_write_quote(quote_id)) WITH CHECK (can_write_quote(quote_id));

ALTER TABLE sales_orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE sales_orders FORCE ROW LEVEL SECURITY;
CREATE POLICY sales_orders_identity ON sales_orders AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY sales_orders_select ON sales_orders FOR SELECT USING (is_record_visible(owner_id, is_private));
CREATE POLICY sales_orders_insert ON sales_orders FOR INSERT
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, contact_id, NULL, deal_id));
CREATE POLICY sales_orders_update ON sales_orders FOR UPDATE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id))
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, contact_id, NULL, deal_id));
CREATE POLICY sales_orders_delete ON sales_orders FOR DELETE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id));

ALTER TABLE sales_order_lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE sales_order_lines FORCE ROW LEVEL SECURITY;
CREATE POLICY sales_order_lines_identity ON sales_order_lines AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY sales_order_lines_select ON sales_order_lines FOR SELECT USING (is_sales_order_visible(sales_order_id));
CREATE POLICY sales_order_lines_write ON sales_order_lines FOR ALL
    USING (can_write_sales_order(sales_order_id)) WITH CHECK (can_write_sales_order(sales_order_id));

-- ---------------------------------------------------------------------------------------------------
-- Privileges of the CRM app role
-- ---------------------------------------------------------------------------------------------------

GRANT SELECT, INSERT, UPDATE, DELETE
    ON product_categories, products, product_variants, price_books, price_book_entries, warehouses, suppliers,
       purchase_orders, purchase_order_lines, quotes, quote_lines, sales_orders, sales_order_lines
    TO ${app_role};
-- Stock is read-only to the app: it changes only through the stock functions.
GRANT SELECT ON stock_levels, stock_reservations, stock_movements TO ${app_role};
GRANT SELECT ON stock_valuation, product_stock, quote_totals, purchase_order_line_receipts TO ${app_role};
GRANT USAGE, SELECT ON SEQUENCE purchase_order_number_seq, quote_number_seq, sales_order_number_seq TO ${app_role};
GRANT EXECUTE ON FUNCTION
    stock_move(uuid, uuid, numeric, text, numeric, text, uuid, uuid, uuid),
    stock_reserve(uuid, uuid, numeric, uuid, uuid, timestamptz, text),
    stock_release(uuid, text),
    stock_expire_reservations(),
    is_quote_visible(uuid), can_write_quote(uuid), is_sales_order_visible(uuid), can_write_sales_order(uuid)
    TO ${app_role};
