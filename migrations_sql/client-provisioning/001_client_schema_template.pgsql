-- 001 client schema template: the CRM core of one tenant.
--
-- Runs in one transaction, as the tenant's owner role, with search_path set to the tenant schema only.
-- Never names a schema: every object lands in the tenant schema. Placeholders: ${owner_role} and
-- ${app_role} (quoted identifiers), ${tenant_id} (a literal).
--
-- Security model (see README "Client schema templates"):
--   * tables belong to ${owner_role}; the CRM app connects as ${app_role} and gets explicit grants only;
--   * every table has row-level security ENABLEd and FORCEd, so even the owner role is filtered;
--   * identity comes from current_setting('app.user_id') (a crm_users.id) and
--     current_setting('app.role'), which must equal that active user's role: every table has a
--     RESTRICTIVE policy app_identity_valid(), a row-independent check the planner runs once per statement;
--   * the permissive policies decide per row with plain expressions the planner inlines
--     (is_record_visible, can_write_record) and SECURITY DEFINER look-ups where a row needs other rows
--     (no subqueries in policies: Citus rule). Look-ups are SQL-standard bodies (BEGIN ATOMIC), bound
--     to their tables when created, so they never depend on the caller's search_path and cannot be
--     redirected to look-alike temporary tables; trigger functions qualify names with TG_TABLE_SCHEMA.

-- Functions are not executable by PUBLIC unless granted below (new ones in later files neither).
ALTER DEFAULT PRIVILEGES FOR ROLE ${owner_role} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
-- Sequences later files create for defaults (e.g. document numbers) are usable by the app.
ALTER DEFAULT PRIVILEGES FOR ROLE ${owner_role} GRANT USAGE, SELECT ON SEQUENCES TO ${app_role};

-- ---------------------------------------------------------------------------------------------------
-- Generic trigger functions
-- ---------------------------------------------------------------------------------------------------

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION set_updated_at() IS 'BEFORE UPDATE trigger: stamps updated_at.';

CREATE FUNCTION forbid_update_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Record a compensating entry instead of changing or removing history.';
END
$$;
COMMENT ON FUNCTION forbid_update_delete() IS 'Trigger for append-only tables: refuses UPDATE, DELETE and TRUNCATE.';

-- ---------------------------------------------------------------------------------------------------
-- Reference data
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE currencies (
    code        text PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    name        text NOT NULL,
    minor_units smallint NOT NULL DEFAULT 2 CHECK (minor_units BETWEEN 0 AND 4),
    is_active   boolean NOT NULL DEFAULT true
);
COMMENT ON TABLE currencies IS 'ISO 4217 currencies; money columns reference this table.';

INSERT INTO currencies (code, name, minor_units) VALUES
    ('AED', 'UAE Dirham', 2), ('AFN', 'Afghani', 2), ('ALL', 'Lek', 2), ('AMD', 'Armenian Dram', 2),
    ('ANG', 'Netherlands Antillean Guilder', 2), ('AOA', 'Kwanza', 2), ('ARS', 'Argentine Peso', 2),
    ('AUD', 'Australian Dollar', 2), ('AWG', 'Aruban Florin', 2), ('AZN', 'Azerbaijan Manat', 2),
    ('BAM', 'Convertible Mark', 2), ('BBD', 'Barbados Dollar', 2), ('BDT', 'Taka', 2), ('BGN', 'Bulgarian Lev', 2),
    ('BHD', 'Bahraini Dinar', 3), ('BIF', 'Burundi Franc', 0), ('BMD', 'Bermudian Dollar', 2),
    ('BND', 'Brunei Dollar', 2), ('BOB', 'Boliviano', 2), ('BRL', 'Brazilian Real', 2), ('BSD', 'Bahamian Dollar', 2),
    ('BTN', 'Ngultrum', 2), ('BWP', 'Pula', 2), ('BYN', 'Belarusian Ruble', 2), ('BZD', 'Belize Dollar', 2),
    ('CAD', 'Canadian Dollar', 2), ('CDF', 'Congolese Franc', 2), ('CHF', 'Swiss Franc', 2),
    ('CLP', 'Chilean Peso', 0), ('CNY', 'Yuan Renminbi', 2), ('COP', 'Colombian Peso', 2),
    ('CRC', 'Costa Rican Colon', 2), ('CUP', 'Cuban Peso', 2), ('CVE', 'Cabo Verde Escudo', 2),
    ('CZK', 'Czech Koruna', 2), ('DJF', 'Djibouti Franc', 0), ('DKK', 'Danish Krone', 2),
    ('DOP', 'Dominican Peso', 2), ('DZD', 'Algerian Dinar', 2), ('EGP', 'Egyptian Pound', 2), ('ERN', 'Nakfa', 2),
    ('ETB', 'Ethiopian Birr', 2), ('EUR', 'Euro', 2), ('FJD', 'Fiji Dollar', 2), ('FKP', 'Falkland Islands Pound', 2),
    ('GBP', 'Pound Sterling', 2), ('GEL', 'Lari', 2), ('GHS', 'Ghana Cedi', 2), ('GIP', 'Gibraltar Pound', 2),
    ('GMD', 'Dalasi', 2), ('GNF', 'Guinean Franc', 0), ('GTQ', 'Quetzal', 2), ('GYD', 'Guyana Dollar', 2),
    ('HKD', 'Hong Kong Dollar', 2), ('HNL', 'Lempira', 2), ('HTG', 'Gourde', 2), ('HUF', 'Forint', 2),
    ('IDR', 'Rupiah', 2), ('ILS', 'New Israeli Sheqel', 2), ('INR', 'Indian Rupee', 2), ('IQD', 'Iraqi Dinar', 3),
    ('IRR', 'Iranian Rial', 2), ('ISK', 'Iceland Krona', 0), ('JMD', 'Jamaican Dollar', 2),
    ('JOD', 'Jordanian Dinar', 3), ('JPY', 'Yen', 0), ('KES', 'Kenyan Shilling', 2), ('KGS', 'Som', 2),
    ('KHR', 'Riel', 2), ('KMF', 'Comorian Franc', 0), ('KPW', 'North Korean Won', 2), ('KRW', 'Won', 0),
    ('KWD', 'Kuwaiti Dinar', 3), ('KYD', 'Cayman Islands Dollar', 2), ('KZT', 'Tenge', 2), ('LAK', 'Lao Kip', 2),
    ('LBP', 'Lebanese Pound', 2), ('LKR', 'Sri Lanka Rupee', 2), ('LRD', 'Liberian Dollar', 2), ('LSL', 'Loti', 2),
    ('LYD', 'Libyan Dinar', 3), ('MAD', 'Moroccan Dirham', 2), ('MDL', 'Moldovan Leu', 2),
    ('MGA', 'Malagasy Ariary', 2), ('MKD', 'Denar', 2), ('MMK', 'Kyat', 2), ('MNT', 'Tugrik', 2),
    ('MOP', 'Pataca', 2), ('MRU', 'Ouguiya', 2), ('MUR', 'Mauritius Rupee', 2), ('MVR', 'Rufiyaa', 2),
    ('MWK', 'Malawi Kwacha', 2), ('MXN', 'Mexican Peso', 2), ('MYR', 'Malaysian Ringgit', 2),
    ('MZN', 'Mozambique Metical', 2), ('NAD', 'Namibia Dollar', 2), ('NGN', 'Naira', 2), ('NIO', 'Cordoba Oro', 2),
    ('NOK', 'Norwegian Krone', 2), ('NPR', 'Nepalese Rupee', 2), ('NZD', 'New Zealand Dollar', 2),
    ('OMR', 'Rial Omani', 3), ('PAB', 'Balboa', 2), ('PEN', 'Sol', 2), ('PGK', 'Kina', 2),
    ('PHP', 'Philippine Peso', 2), ('PKR', 'Pakistan Rupee', 2), ('PLN', 'Zloty', 2), ('PYG', 'Guarani', 0),
    ('QAR', 'Qatari Rial', 2), ('RON', 'Romanian Leu', 2), ('RSD', 'Serbian Dinar', 2), ('RUB', 'Russian Ruble', 2),
    ('RWF', 'Rwanda Franc', 0), ('SAR', 'Saudi Riyal', 2), ('SBD', 'Solomon Islands Dollar', 2),
    ('SCR', 'Seychelles Rupee', 2), ('SDG', 'Sudanese Pound', 2), ('SEK', 'Swedish Krona', 2),
    ('SGD', 'Singapore Dollar', 2), ('SHP', 'Saint Helena Pound', 2), ('SLE', 'Leone', 2),
    ('SOS', 'Somali Shilling', 2), ('SRD', 'Surinam Dollar', 2), ('SSP', 'South Sudanese Pound', 2),
    ('STN', 'Dobra', 2), ('SVC', 'El Salvador Colon', 2), ('SYP', 'Syrian Pound', 2), ('SZL', 'Lilangeni', 2),
    ('THB', 'Baht', 2), ('TJS', 'Somoni', 2), ('TMT', 'Turkmenistan New Manat', 2), ('TND', 'Tunisian Dinar', 3),
    ('TOP', 'Pa''anga', 2), ('TRY', 'Turkish Lira', 2), ('TTD', 'Trinidad and Tobago Dollar', 2),
    ('TWD', 'New Taiwan Dollar', 2), ('TZS', 'Tanzanian Shilling', 2), ('UAH', 'Hryvnia', 2),
    ('UGX', 'Uganda Shilling', 0), ('USD', 'US Dollar', 2), ('UYU', 'Peso Uruguayo', 2), ('UZS', 'Uzbekistan Sum', 2),
    ('VED', 'Bolivar Soberano (digital)', 2), ('VES', 'Bolivar Soberano', 2), ('VND', 'Dong', 0), ('VUV', 'Vatu', 0),
    ('WST', 'Tala', 2), ('XAF', 'CFA Franc BEAC', 0), ('XCD', 'East Caribbean Dollar', 2),
    ('XCG', 'Caribbean Guilder', 2), ('XOF', 'CFA Franc BCEAO', 0), ('XPF', 'CFP Franc', 0), ('YER', 'Yemeni Rial', 2),
    ('ZAR', 'Rand', 2), ('ZMW', 'Zambian Kwacha', 2), ('ZWG', 'Zimbabwe Gold', 2);

-- ---------------------------------------------------------------------------------------------------
-- CRM users, teams
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE crm_users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL UNIQUE CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    full_name     text NOT NULL DEFAULT '',
    role          text NOT NULL CHECK (role IN ('admin', 'manager', 'member')),
    is_active     boolean NOT NULL DEFAULT true,
    password_hash text,
    title         text NOT NULL DEFAULT '',
    phone         text NOT NULL DEFAULT '',
    time_zone     text NOT NULL DEFAULT 'UTC',
    last_login_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Logins are case-insensitive: two accounts differing only in case would be one person twice.
CREATE UNIQUE INDEX crm_users_email_lower_key ON crm_users (lower(email));
COMMENT ON TABLE crm_users IS 'People who use this tenant''s CRM. role: admin (sees everything), manager, member.';

CREATE TABLE teams (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (btrim(name) <> ''),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX teams_name_lower_key ON teams (lower(name));

CREATE TABLE team_members (
    team_id    uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES crm_users (id) ON DELETE CASCADE,
    is_lead    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
-- Visibility checks go user -> teams -> team mates.
CREATE INDEX team_members_user_idx ON team_members (user_id, team_id);

-- ---------------------------------------------------------------------------------------------------
-- Session identity and visibility helpers (used by every policy)
-- ---------------------------------------------------------------------------------------------------

CREATE FUNCTION app_current_user_id() RETURNS uuid
LANGUAGE sql STABLE
RETURN nullif(current_setting('app.user_id', true), '')::uuid;
COMMENT ON FUNCTION app_current_user_id() IS 'The CRM user of this session (app.user_id), NULL when unset.';

-- The role the session claims (app.role), for use inside policies: a plain expression the planner
-- inlines, so it costs nothing per row. The claim itself is checked once per statement by
-- app_identity_valid() in each table's RESTRICTIVE policy.
CREATE FUNCTION app_current_role() RETURNS text
LANGUAGE sql STABLE
RETURN CASE
           WHEN app_current_user_id() IS NOT NULL
            AND current_setting('app.role', true) IN ('admin', 'manager', 'member')
           THEN current_setting('app.role', true)
       END;
COMMENT ON FUNCTION app_current_role() IS
    'The role claimed by app.role when app.user_id is set, else NULL; validated by app_identity_valid().';

-- True when app.user_id is an active user whose role is exactly app.role. Takes no row argument, so in a
-- RESTRICTIVE policy the planner evaluates it once per statement (a one-time filter), not once per row.
CREATE FUNCTION app_identity_valid() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT EXISTS (
        SELECT 1
          FROM crm_users u
         WHERE u.id = app_current_user_id()
           AND u.is_active
           AND u.role = current_setting('app.role', true));
END;
COMMENT ON FUNCTION app_identity_valid() IS
    'The session''s identity (app.user_id, app.role) names an active user with that role.';

CREATE FUNCTION is_team_visible(p_owner uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT coalesce(
        p_owner = app_current_user_id()
        OR EXISTS (
            SELECT 1
              FROM team_members mine
              JOIN team_members theirs ON theirs.team_id = mine.team_id
             WHERE mine.user_id = app_current_user_id()
               AND theirs.user_id = p_owner),
        false);
END;
COMMENT ON FUNCTION is_team_visible(uuid) IS 'True when p_owner is the session user or shares a team with them.';

-- The two row rules are plain expressions (inlined into each policy): only a record owned by someone
-- else reaches the team look-up.
CREATE FUNCTION is_record_visible(p_owner uuid, p_private boolean) RETURNS boolean
LANGUAGE sql STABLE
RETURN CASE
           WHEN app_current_role() IS NULL THEN false
           WHEN app_current_role() = 'admin' THEN true
           WHEN p_owner = app_current_user_id() THEN true
           WHEN p_private THEN false
           ELSE is_team_visible(p_owner)
       END;
COMMENT ON FUNCTION is_record_visible(uuid, boolean) IS
    'Read rule of owned records: admins, the owner, and (unless private) the owner''s team mates.';

CREATE FUNCTION can_write_record(p_owner uuid) RETURNS boolean
LANGUAGE sql STABLE
RETURN CASE app_current_role()
           WHEN 'admin' THEN true
           WHEN 'manager' THEN coalesce(p_owner = app_current_user_id(), false) OR is_team_visible(p_owner)
           WHEN 'member' THEN coalesce(p_owner = app_current_user_id(), false)
           ELSE false
       END;
COMMENT ON FUNCTION can_write_record(uuid) IS
    'Write rule of owned records: admins any, managers their teams'' records, members their own.';

-- ---------------------------------------------------------------------------------------------------
-- Accounts, people, leads
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE companies (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id          uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    is_private        boolean NOT NULL DEFAULT false,
    name              text NOT NULL CHECK (btrim(name) <> ''),
    domain            text CHECK (domain IS NULL OR domain ~ '^[a-z0-9.-]+\.[a-z]{2,}$'),
    industry          text NOT NULL DEFAULT '',
    employee_count    integer CHECK (employee_count IS NULL OR employee_count >= 0),
    annual_revenue    numeric(18, 2) CHECK (annual_revenue IS NULL OR annual_revenue >= 0),
    revenue_currency  text REFERENCES currencies (code),
    lifecycle_stage   text NOT NULL DEFAULT 'prospect'
                      CHECK (lifecycle_stage IN ('prospect', 'customer', 'partner', 'former_customer', 'other')),
    phone             text NOT NULL DEFAULT '',
    website           text NOT NULL DEFAULT '',
    address_line1     text NOT NULL DEFAULT '',
    address_line2     text NOT NULL DEFAULT '',
    city              text NOT NULL DEFAULT '',
    region            text NOT NULL DEFAULT '',
    postal_code       text NOT NULL DEFAULT '',
    country_code      text CHECK (country_code IS NULL OR country_code ~ '^[A-Z]{2}$'),
    parent_company_id uuid REFERENCES companies (id) ON DELETE SET NULL,
    search_vector     tsvector GENERATED ALWAYS AS (
                          to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(domain, '') || ' '
                                                || coalesce(industry, '') || ' ' || coalesce(city, ''))
                      ) STORED,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_company_id IS DISTINCT FROM id),
    CHECK ((annual_revenue IS NULL) = (revenue_currency IS NULL))
);
CREATE INDEX companies_owner_idx ON companies (owner_id) WHERE deleted_at IS NULL;
CREATE INDEX companies_name_idx ON companies (lower(name) text_pattern_ops) WHERE deleted_at IS NULL;
CREATE INDEX companies_domain_idx ON companies (domain) WHERE domain IS NOT NULL;
CREATE INDEX companies_parent_idx ON companies (parent_company_id) WHERE parent_company_id IS NOT NULL;
CREATE INDEX companies_search_idx ON companies USING gin (search_vector);

CREATE TABLE contacts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id         uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    is_private       boolean NOT NULL DEFAULT false,
    company_id       uuid REFERENCES companies (id) ON DELETE SET NULL,
    first_name       text NOT NULL DEFAULT '',
    last_name        text NOT NULL DEFAULT '',
    email            text CHECK (email IS NULL OR email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    phone            text NOT NULL DEFAULT '',
    mobile           text NOT NULL DEFAULT '',
    job_title        text NOT NULL DEFAULT '',
    lifecycle_stage  text NOT NULL DEFAULT 'lead'
                     CHECK (lifecycle_stage IN ('subscriber', 'lead', 'opportunity', 'customer', 'evangelist', 'other')),
    source           text NOT NULL DEFAULT '',
    do_not_contact   boolean NOT NULL DEFAULT false,
    birthday         date,
    city             text NOT NULL DEFAULT '',
    country_code     text CHECK (country_code IS NULL OR country_code ~ '^[A-Z]{2}$'),
    search_vector    tsvector GENERATED ALWAYS AS (
                         to_tsvector('simple', coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' '
                                               || coalesce(email, '') || ' ' || coalesce(phone, '') || ' '
                                               || coalesce(mobile, '') || ' ' || coalesce(job_title, ''))
                     ) STORED,
    deleted_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (btrim(first_name || last_name) <> '' OR email IS NOT NULL)
);
CREATE INDEX contacts_owner_idx ON contacts (owner_id) WHERE deleted_at IS NULL;
CREATE INDEX contacts_company_idx ON contacts (company_id) WHERE company_id IS NOT NULL;
-- Exact and prefix look-ups by e-mail (text_pattern_ops serves both = and LIKE 'abc%').
CREATE INDEX contacts_email_idx ON contacts (lower(email) text_pattern_ops) WHERE deleted_at IS NULL;
CREATE INDEX contacts_name_idx ON contacts (lower(last_name), lower(first_name)) WHERE deleted_at IS NULL;
CREATE INDEX contacts_search_idx ON contacts USING gin (search_vector);

CREATE TABLE leads (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id             uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    is_private           boolean NOT NULL DEFAULT false,
    first_name           text NOT NULL DEFAULT '',
    last_name            text NOT NULL DEFAULT '',
    email                text CHECK (email IS NULL OR email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    phone                text NOT NULL DEFAULT '',
    company_name         text NOT NULL DEFAULT '',
    job_title            text NOT NULL DEFAULT '',
    source               text NOT NULL DEFAULT '',
    status               text NOT NULL DEFAULT 'new'
                         CHECK (status IN ('new', 'contacted', 'qualified', 'unqualified', 'converted')),
    score                smallint NOT NULL DEFAULT 0 CHECK (score BETWEEN 0 AND 100),
    converted_at         timestamptz,
    converted_company_id uuid REFERENCES companies (id) ON DELETE SET NULL,
    converted_contact_id uuid REFERENCES contacts (id) ON DELETE SET NULL,
    search_vector        tsvector GENERATED ALWAYS AS (
                             to_tsvector('simple', coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' '
                                                   || coalesce(email, '') || ' ' || coalesce(company_name, ''))
                         ) STORED,
    deleted_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'converted') = (converted_at IS NOT NULL)),
    CHECK (btrim(first_name || last_name || company_name) <> '' OR email IS NOT NULL)
);
CREATE INDEX leads_owner_status_idx ON leads (owner_id, status) WHERE deleted_at IS NULL;
CREATE INDEX leads_email_idx ON leads (lower(email) text_pattern_ops) WHERE deleted_at IS NULL;
CREATE INDEX leads_search_idx ON leads USING gin (search_vector);

-- ---------------------------------------------------------------------------------------------------
-- Pipelines and deals
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE pipelines (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (btrim(name) <> ''),
    is_default boolean NOT NULL DEFAULT false,
    is_active  boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX pipelines_name_lower_key ON pipelines (lower(name));
CREATE UNIQUE INDEX pipelines_one_default_key ON pipelines (is_default) WHERE is_default;

CREATE TABLE pipeline_stages (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (btrim(name) <> ''),
    position    integer NOT NULL CHECK (position >= 0),
    probability smallint NOT NULL CHECK (probability BETWEEN 0 AND 100),
    stage_type  text NOT NULL DEFAULT 'open' CHECK (stage_type IN ('open', 'won', 'lost')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (stage_type <> 'won' OR probability = 100),
    CHECK (stage_type <> 'lost' OR probability = 0),
    -- Reordering stages swaps positions inside one transaction: check at commit.
    CONSTRAINT pipeline_stages_position_key UNIQUE (pipeline_id, position) DEFERRABLE INITIALLY DEFERRED,
    -- Target of deals' (stage_id, pipeline_id) key: a deal's stage belongs to the deal's pipeline.
    CONSTRAINT pipeline_stages_id_pipeline_key UNIQUE (id, pipeline_id)
);
CREATE UNIQUE INDEX pipeline_stages_name_key ON pipeline_stages (pipeline_id, lower(name));

CREATE TABLE deals (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id             uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    is_private           boolean NOT NULL DEFAULT false,
    name                 text NOT NULL CHECK (btrim(name) <> ''),
    pipeline_id          uuid NOT NULL REFERENCES pipelines (id) ON DELETE RESTRICT,
    stage_id             uuid NOT NULL,
    amount               numeric(18, 2) NOT NULL DEFAULT 0 CHECK (amount >= 0),
    currency             text NOT NULL REFERENCES currencies (code),
    probability_override smallint CHECK (probability_override BETWEEN 0 AND 100),
    company_id           uuid REFERENCES companies (id) ON DELETE SET NULL,
    contact_id           uuid REFERENCES contacts (id) ON DELETE SET NULL,
    lead_id              uuid REFERENCES leads (id) ON DELETE SET NULL,
    expected_close_date  date,
    source               text NOT NULL DEFAULT '',
    lost_reason          text NOT NULL DEFAULT '',
    stage_changed_at     timestamptz NOT NULL DEFAULT now(),
    closed_at            timestamptz,
    deleted_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deals_stage_in_pipeline_fkey FOREIGN KEY (stage_id, pipeline_id)
        REFERENCES pipeline_stages (id, pipeline_id) ON DELETE RESTRICT
);
-- The pipeline board: open deals per pipeline and stage.
CREATE INDEX deals_board_idx ON deals (pipeline_id, stage_id, expected_close_date)
    WHERE deleted_at IS NULL AND closed_at IS NULL;
CREATE INDEX deals_owner_close_idx ON deals (owner_id, expected_close_date) WHERE deleted_at IS NULL;
CREATE INDEX deals_stage_idx ON deals (stage_id);
CREATE INDEX deals_company_idx ON deals (company_id) WHERE company_id IS NOT NULL;
CREATE INDEX deals_contact_idx ON deals (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX deals_lead_idx ON deals (lead_id) WHERE lead_id IS NOT NULL;
CREATE INDEX deals_closed_idx ON deals (closed_at) WHERE closed_at IS NOT NULL;

CREATE TABLE deal_stage_history (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deal_id       uuid NOT NULL REFERENCES deals (id) ON DELETE CASCADE,
    from_stage_id uuid REFERENCES pipeline_stages (id) ON DELETE SET NULL,
    to_stage_id   uuid REFERENCES pipeline_stages (id) ON DELETE SET NULL,
    changed_by    uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    amount        numeric(18, 2) NOT NULL,
    currency      text NOT NULL REFERENCES currencies (code),
    changed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deal_stage_history_deal_idx ON deal_stage_history (deal_id, changed_at);
CREATE INDEX deal_stage_history_from_idx ON deal_stage_history (from_stage_id);
CREATE INDEX deal_stage_history_to_idx ON deal_stage_history (to_stage_id);
COMMENT ON TABLE deal_stage_history IS 'Every stage a deal entered, written by a trigger (sales velocity reports).';

-- Keeps closed_at and stage_changed_at true to the stage: a deal is closed exactly while its stage is
-- won or lost, whoever moves it (app, import, support).
CREATE FUNCTION deals_stage_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_stage_type text;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.stage_id IS NOT DISTINCT FROM OLD.stage_id THEN
        RETURN NEW;
    END IF;
    -- Qualified by the trigger's own schema: never depends on the caller's search_path.
    EXECUTE format('SELECT stage_type FROM %I.pipeline_stages WHERE id = $1', TG_TABLE_SCHEMA)
        INTO v_stage_type USING NEW.stage_id;
    NEW.stage_changed_at := now();
    IF v_stage_type IN ('won', 'lost') THEN
        NEW.closed_at := coalesce(NEW.closed_at, now());
        IF v_stage_type = 'won' THEN
            NEW.lost_reason := '';
        END IF;
    ELSE
        NEW.closed_at := NULL;
        NEW.lost_reason := '';
    END IF;
    RETURN NEW;
END
$$;

-- SECURITY DEFINER: the app may read the history but never write it directly.
CREATE FUNCTION deals_stage_history_append() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_from uuid;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.stage_id IS NOT DISTINCT FROM OLD.stage_id THEN
            RETURN NULL;
        END IF;
        v_from := OLD.stage_id;
    END IF;
    EXECUTE format(
        'INSERT INTO %I.deal_stage_history (deal_id, from_stage_id, to_stage_id, changed_by, amount, currency)'
        ' VALUES ($1, $2, $3, $4, $5, $6)', TG_TABLE_SCHEMA)
        USING NEW.id, v_from, NEW.stage_id, nullif(current_setting('app.user_id', true), '')::uuid,
              NEW.amount, NEW.currency;
    RETURN NULL;
END
$$;

CREATE TRIGGER deals_stage_sync BEFORE INSERT OR UPDATE OF stage_id ON deals
    FOR EACH ROW EXECUTE FUNCTION deals_stage_sync();
CREATE TRIGGER deals_stage_history AFTER INSERT OR UPDATE OF stage_id ON deals
    FOR EACH ROW EXECUTE FUNCTION deals_stage_history_append();

-- ---------------------------------------------------------------------------------------------------
-- Visibility of linked records (activities, notes, tags... point at these four)
-- ---------------------------------------------------------------------------------------------------

-- Runs as the owner role, which is itself subject to the FORCEd policies: EXISTS sees exactly the rows
-- the session may see.
CREATE FUNCTION are_targets_visible(p_company uuid, p_contact uuid, p_lead uuid, p_deal uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT (p_company IS NULL OR EXISTS (SELECT 1 FROM companies c WHERE c.id = p_company))
       AND (p_contact IS NULL OR EXISTS (SELECT 1 FROM contacts c WHERE c.id = p_contact))
       AND (p_lead IS NULL OR EXISTS (SELECT 1 FROM leads l WHERE l.id = p_lead))
       AND (p_deal IS NULL OR EXISTS (SELECT 1 FROM deals d WHERE d.id = p_deal));
END;
COMMENT ON FUNCTION are_targets_visible(uuid, uuid, uuid, uuid) IS
    'True when every non-NULL record id is visible to the session (NULLs are ignored).';

-- ---------------------------------------------------------------------------------------------------
-- Activities, tasks, notes
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE activities (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id         uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    is_private       boolean NOT NULL DEFAULT false,
    activity_type    text NOT NULL CHECK (activity_type IN ('call', 'meeting', 'email', 'sms', 'other')),
    status           text NOT NULL DEFAULT 'completed' CHECK (status IN ('planned', 'completed', 'cancelled')),
    subject          text NOT NULL CHECK (btrim(subject) <> ''),
    body             text NOT NULL DEFAULT '',
    direction        text CHECK (direction IN ('inbound', 'outbound')),
    outcome          text NOT NULL DEFAULT '',
    starts_at        timestamptz NOT NULL DEFAULT now(),
    ends_at          timestamptz,
    location         text NOT NULL DEFAULT '',
    email_message_id text,
    email_from       text,
    email_to         text[] NOT NULL DEFAULT '{}',
    company_id       uuid REFERENCES companies (id) ON DELETE CASCADE,
    contact_id       uuid REFERENCES contacts (id) ON DELETE CASCADE,
    lead_id          uuid REFERENCES leads (id) ON DELETE CASCADE,
    deal_id          uuid REFERENCES deals (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- An activity concerns at least one record (a call with a contact about a deal names both).
    CHECK (num_nonnulls(company_id, contact_id, lead_id, deal_id) >= 1),
    CHECK (ends_at IS NULL OR ends_at >= starts_at),
    CHECK (activity_type = 'email' OR email_message_id IS NULL),
    CHECK (activity_type IN ('call', 'email', 'sms') OR direction IS NULL)
);
-- Timelines: activities of one record, newest first.
CREATE INDEX activities_deal_idx ON activities (deal_id, starts_at DESC) WHERE deal_id IS NOT NULL;
CREATE INDEX activities_contact_idx ON activities (contact_id, starts_at DESC) WHERE contact_id IS NOT NULL;
CREATE INDEX activities_company_idx ON activities (company_id, starts_at DESC) WHERE company_id IS NOT NULL;
CREATE INDEX activities_lead_idx ON activities (lead_id, starts_at DESC) WHERE lead_id IS NOT NULL;
-- A rep's calendar.
CREATE INDEX activities_owner_idx ON activities (owner_id, starts_at);
-- An e-mail synchronised twice is one activity.
CREATE UNIQUE INDEX activities_email_message_key ON activities (email_message_id) WHERE email_message_id IS NOT NULL;

CREATE TABLE tasks (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id     uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    created_by   uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    is_private   boolean NOT NULL DEFAULT false,
    title        text NOT NULL CHECK (btrim(title) <> ''),
    description  text NOT NULL DEFAULT '',
    priority     text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'done', 'cancelled')),
    due_at       timestamptz,
    completed_at timestamptz,
    company_id   uuid REFERENCES companies (id) ON DELETE CASCADE,
    contact_id   uuid REFERENCES contacts (id) ON DELETE CASCADE,
    lead_id      uuid REFERENCES leads (id) ON DELETE CASCADE,
    deal_id      uuid REFERENCES deals (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'done') = (completed_at IS NOT NULL))
);
-- "My open tasks by due date".
CREATE INDEX tasks_owner_open_idx ON tasks (owner_id, due_at) WHERE status IN ('open', 'in_progress');
CREATE INDEX tasks_deal_idx ON tasks (deal_id) WHERE deal_id IS NOT NULL;
CREATE INDEX tasks_contact_idx ON tasks (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX tasks_company_idx ON tasks (company_id) WHERE company_id IS NOT NULL;
CREATE INDEX tasks_lead_idx ON tasks (lead_id) WHERE lead_id IS NOT NULL;

CREATE TABLE notes (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id   uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    is_private boolean NOT NULL DEFAULT false,
    body       text NOT NULL CHECK (btrim(body) <> ''),
    is_pinned  boolean NOT NULL DEFAULT false,
    company_id uuid REFERENCES companies (id) ON DELETE CASCADE,
    contact_id uuid REFERENCES contacts (id) ON DELETE CASCADE,
    lead_id    uuid REFERENCES leads (id) ON DELETE CASCADE,
    deal_id    uuid REFERENCES deals (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(company_id, contact_id, lead_id, deal_id) >= 1)
);
CREATE INDEX notes_deal_idx ON notes (deal_id, created_at DESC) WHERE deal_id IS NOT NULL;
CREATE INDEX notes_contact_idx ON notes (contact_id, created_at DESC) WHERE contact_id IS NOT NULL;
CREATE INDEX notes_company_idx ON notes (company_id, created_at DESC) WHERE company_id IS NOT NULL;
CREATE INDEX notes_lead_idx ON notes (lead_id, created_at DESC) WHERE lead_id IS NOT NULL;
CREATE INDEX notes_owner_idx ON notes (owner_id);

-- ---------------------------------------------------------------------------------------------------
-- Tags, custom fields, attachments, e-mail templates, settings
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE tags (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (btrim(name) <> '' AND length(name) <= 64),
    color      text NOT NULL DEFAULT '#64748b' CHECK (color ~ '^#[0-9a-f]{6}$'),
    created_by uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tags_name_lower_key ON tags (lower(name));

CREATE TABLE taggings (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tag_id     uuid NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    company_id uuid REFERENCES companies (id) ON DELETE CASCADE,
    contact_id uuid REFERENCES contacts (id) ON DELETE CASCADE,
    lead_id    uuid REFERENCES leads (id) ON DELETE CASCADE,
    deal_id    uuid REFERENCES deals (id) ON DELETE CASCADE,
    tagged_by  uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(company_id, contact_id, lead_id, deal_id) = 1)
);
-- One tag once per record; these also serve "tags of this record".
CREATE UNIQUE INDEX taggings_company_key ON taggings (company_id, tag_id) WHERE company_id IS NOT NULL;
CREATE UNIQUE INDEX taggings_contact_key ON taggings (contact_id, tag_id) WHERE contact_id IS NOT NULL;
CREATE UNIQUE INDEX taggings_lead_key ON taggings (lead_id, tag_id) WHERE lead_id IS NOT NULL;
CREATE UNIQUE INDEX taggings_deal_key ON taggings (deal_id, tag_id) WHERE deal_id IS NOT NULL;
-- "Records with this tag".
CREATE INDEX taggings_tag_idx ON taggings (tag_id);

CREATE TABLE custom_field_definitions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    entity      text NOT NULL CHECK (entity IN ('company', 'contact', 'lead', 'deal')),
    key         text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]{0,62}$'),
    label       text NOT NULL CHECK (btrim(label) <> ''),
    field_type  text NOT NULL CHECK (field_type IN ('text', 'number', 'date', 'boolean', 'select', 'multi_select')),
    options     jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(options) = 'array'),
    is_required boolean NOT NULL DEFAULT false,
    position    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (entity, key),
    -- Target of custom_field_values' key: a value carries its definition's entity and type.
    UNIQUE (id, entity, field_type),
    CHECK (field_type IN ('select', 'multi_select') OR options = '[]'::jsonb)
);

CREATE TABLE custom_field_values (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    definition_id uuid NOT NULL,
    entity        text NOT NULL,
    field_type    text NOT NULL,
    company_id    uuid REFERENCES companies (id) ON DELETE CASCADE,
    contact_id    uuid REFERENCES contacts (id) ON DELETE CASCADE,
    lead_id       uuid REFERENCES leads (id) ON DELETE CASCADE,
    deal_id       uuid REFERENCES deals (id) ON DELETE CASCADE,
    value_text    text,
    value_number  numeric,
    value_date    date,
    value_boolean boolean,
    value_json    jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- Changing a definition's type cascades here, where the value checks then refuse stale values.
    FOREIGN KEY (definition_id, entity, field_type)
        REFERENCES custom_field_definitions (id, entity, field_type) ON DELETE CASCADE ON UPDATE CASCADE,
    CHECK (num_nonnulls(company_id, contact_id, lead_id, deal_id) = 1),
    CHECK (CASE entity
               WHEN 'company' THEN company_id IS NOT NULL
               WHEN 'contact' THEN contact_id IS NOT NULL
               WHEN 'lead' THEN lead_id IS NOT NULL
               WHEN 'deal' THEN deal_id IS NOT NULL
               ELSE false
           END),
    CHECK (num_nonnulls(value_text, value_number, value_date, value_boolean, value_json) = 1),
    CHECK (CASE field_type
               WHEN 'text' THEN value_text IS NOT NULL
               WHEN 'select' THEN value_text IS NOT NULL
               WHEN 'number' THEN value_number IS NOT NULL
               WHEN 'date' THEN value_date IS NOT NULL
               WHEN 'boolean' THEN value_boolean IS NOT NULL
               WHEN 'multi_select' THEN jsonb_typeof(value_json) = 'array'
               ELSE false
           END)
);
CREATE UNIQUE INDEX custom_field_values_company_key ON custom_field_values (company_id, definition_id)
    WHERE company_id IS NOT NULL;
CREATE UNIQUE INDEX custom_field_values_contact_key ON custom_field_values (contact_id, definition_id)
    WHERE contact_id IS NOT NULL;
CREATE UNIQUE INDEX custom_field_values_lead_key ON custom_field_values (lead_id, definition_id)
    WHERE lead_id IS NOT NULL;
CREATE UNIQUE INDEX custom_field_values_deal_key ON custom_field_values (deal_id, definition_id)
    WHERE deal_id IS NOT NULL;
CREATE INDEX custom_field_values_definition_idx ON custom_field_values (definition_id, entity, field_type);

CREATE TABLE attachments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id     uuid NOT NULL REFERENCES crm_users (id) ON DELETE RESTRICT,
    is_private   boolean NOT NULL DEFAULT false,
    file_name    text NOT NULL CHECK (btrim(file_name) <> '' AND file_name !~ '[/\\]'),
    content_type text NOT NULL DEFAULT 'application/octet-stream' CHECK (content_type ~ '^[a-z]+/[a-zA-Z0-9.+_-]+$'),
    size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    storage_key  text NOT NULL UNIQUE CHECK (btrim(storage_key) <> ''),
    company_id   uuid REFERENCES companies (id) ON DELETE CASCADE,
    contact_id   uuid REFERENCES contacts (id) ON DELETE CASCADE,
    lead_id      uuid REFERENCES leads (id) ON DELETE CASCADE,
    deal_id      uuid REFERENCES deals (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(company_id, contact_id, lead_id, deal_id) >= 1)
);
COMMENT ON TABLE attachments IS 'File metadata; the bytes live in object storage under storage_key.';
CREATE INDEX attachments_deal_idx ON attachments (deal_id) WHERE deal_id IS NOT NULL;
CREATE INDEX attachments_contact_idx ON attachments (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX attachments_company_idx ON attachments (company_id) WHERE company_id IS NOT NULL;
CREATE INDEX attachments_lead_idx ON attachments (lead_id) WHERE lead_id IS NOT NULL;
CREATE INDEX attachments_owner_idx ON attachments (owner_id);

CREATE TABLE email_templates (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id   uuid NOT NULL REFERENCES crm_users (id) ON DELETE CASCADE,
    is_shared  boolean NOT NULL DEFAULT false,
    name       text NOT NULL CHECK (btrim(name) <> ''),
    category   text NOT NULL DEFAULT '',
    subject    text NOT NULL,
    body_html  text NOT NULL DEFAULT '',
    body_text  text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (btrim(body_html || body_text) <> '')
);
CREATE UNIQUE INDEX email_templates_owner_name_key ON email_templates (owner_id, lower(name));
CREATE INDEX email_templates_shared_idx ON email_templates (lower(name)) WHERE is_shared;

CREATE TABLE tenant_settings (
    key         text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    value       jsonb NOT NULL,
    description text NOT NULL DEFAULT '',
    updated_by  uuid REFERENCES crm_users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO tenant_settings (key, value, description) VALUES
    ('tenant.id', to_jsonb(${tenant_id}::text), 'The control plane''s id of this tenant.'),
    ('currency.default', '"USD"', 'ISO 4217 code preselected on new deals, quotes and orders.'),
    ('locale.time_zone', '"UTC"', 'IANA time zone for dates shown without a user preference.'),
    ('fiscal_year.start_month', '1', 'First month (1-12) of the fiscal year, for forecasts.'),
    ('deals.rotting_days', '30', 'Days without a stage change after which an open deal is flagged.');

-- ---------------------------------------------------------------------------------------------------
-- In-schema activity / audit log
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE activity_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    -- No foreign keys: the log outlives the users and records it mentions, and is never updated.
    actor_id    uuid,
    action      text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.]*$'),
    table_name  text,
    record_id   uuid,
    changes     jsonb NOT NULL DEFAULT '{}',
    ip_address  inet,
    request_id  text
);
CREATE INDEX activity_log_record_idx ON activity_log (table_name, record_id, occurred_at DESC);
CREATE INDEX activity_log_actor_idx ON activity_log (actor_id, occurred_at DESC);
CREATE INDEX activity_log_time_idx ON activity_log (occurred_at);
COMMENT ON TABLE activity_log IS
    'Append-only record of changes (written by triggers on the main CRM tables) and app events (logins, exports).';

CREATE TRIGGER activity_log_append_only BEFORE UPDATE OR DELETE ON activity_log
    FOR EACH ROW EXECUTE FUNCTION forbid_update_delete();
CREATE TRIGGER activity_log_no_truncate BEFORE TRUNCATE ON activity_log
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_update_delete();

-- Invoker rights: the app may insert into activity_log, and the insert policy pins actor_id to the session.
CREATE FUNCTION log_record_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_changes jsonb;
    v_id uuid;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT jsonb_object_agg(n.key, jsonb_build_array(o.value, n.value))
          INTO v_changes
          FROM jsonb_each(to_jsonb(NEW)) n
          JOIN jsonb_each(to_jsonb(OLD)) o ON o.key = n.key
         WHERE n.value IS DISTINCT FROM o.value
           AND n.key NOT IN ('updated_at', 'search_vector');
        IF v_changes IS NULL THEN
            RETURN NULL;  -- nothing but bookkeeping changed
        END IF;
        v_id := NEW.id;
    ELSIF TG_OP = 'INSERT' THEN
        v_changes := to_jsonb(NEW) - 'search_vector';
        v_id := NEW.id;
    ELSE
        v_changes := to_jsonb(OLD) - 'search_vector';
        v_id := OLD.id;
    END IF;
    EXECUTE format(
        'INSERT INTO %I.activity_log (actor_id, action, table_name, record_id, changes) VALUES ($1, $2, $3, $4, $5)',
        TG_TABLE_SCHEMA)
        USING nullif(current_setting('app.user_id', true), '')::uuid, lower(TG_OP), TG_TABLE_NAME, v_id, v_changes;
    RETURN NULL;
END
$$;

CREATE TRIGGER companies_log AFTER INSERT OR UPDATE OR DELETE ON companies
    FOR EACH ROW EXECUTE FUNCTION log_record_change();
CREATE TRIGGER contacts_log AFTER INSERT OR UPDATE OR DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION log_record_change();
CREATE TRIGGER leads_log AFTER INSERT OR UPDATE OR DELETE ON leads
    FOR EACH ROW EXECUTE FUNCTION log_record_change();
CREATE TRIGGER deals_log AFTER INSERT OR UPDATE OR DELETE ON deals
    FOR EACH ROW EXECUTE FUNCTION log_record_change();

-- ---------------------------------------------------------------------------------------------------
-- crm_users: privilege changes are admin-only, the password hash is reached through functions
-- ---------------------------------------------------------------------------------------------------

-- Users may edit their own profile (policy below); only an admin changes role, status or login e-mail.
CREATE FUNCTION crm_users_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_role text;
BEGIN
    IF nullif(current_setting('app.user_id', true), '') IS NULL THEN
        RETURN NEW;  -- a maintenance session (provisioning, support), not a CRM user
    END IF;
    EXECUTE format('SELECT %I.app_current_role()', TG_TABLE_SCHEMA) INTO v_role;
    IF v_role IS DISTINCT FROM 'admin'
       AND (NEW.role, NEW.is_active, NEW.email) IS DISTINCT FROM (OLD.role, OLD.is_active, OLD.email) THEN
        RAISE EXCEPTION 'only a CRM admin may change the role, active status or e-mail of a user'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER crm_users_guard BEFORE UPDATE ON crm_users
    FOR EACH ROW EXECUTE FUNCTION crm_users_guard();

-- Login happens before the session knows its user, so it cannot go through the row policies' identity.
CREATE FUNCTION crm_user_login(p_email text)
RETURNS TABLE (id uuid, role text, full_name text, password_hash text)
LANGUAGE sql STABLE SECURITY DEFINER
BEGIN ATOMIC
    SELECT u.id, u.role, u.full_name, u.password_hash
      FROM crm_users u
     WHERE lower(u.email) = lower(p_email)
       AND u.is_active;
END;
COMMENT ON FUNCTION crm_user_login(text) IS
    'The active user with this e-mail and their password hash, for the app to verify a login.';

CREATE FUNCTION crm_user_set_password(p_user_id uuid, p_password_hash text) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
BEGIN ATOMIC
    WITH changed AS (
        UPDATE crm_users u
           SET password_hash = p_password_hash
         WHERE u.id = p_user_id
           AND (u.id = app_current_user_id() OR app_current_role() = 'admin')
        RETURNING 1
    )
    SELECT count(*) = 1 FROM changed;
END;
COMMENT ON FUNCTION crm_user_set_password(uuid, text) IS
    'Sets a user''s password hash: the user themself or an admin. False when not allowed or not found.';

-- ---------------------------------------------------------------------------------------------------
-- updated_at triggers
-- ---------------------------------------------------------------------------------------------------

CREATE TRIGGER crm_users_updated_at BEFORE UPDATE ON crm_users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER teams_updated_at BEFORE UPDATE ON teams
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER companies_updated_at BEFORE UPDATE ON companies
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER contacts_updated_at BEFORE UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER leads_updated_at BEFORE UPDATE ON leads
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER pipelines_updated_at BEFORE UPDATE ON pipelines
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER pipeline_stages_updated_at BEFORE UPDATE ON pipeline_stages
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER deals_updated_at BEFORE UPDATE ON deals
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER activities_updated_at BEFORE UPDATE ON activities
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER tasks_updated_at BEFORE UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER notes_updated_at BEFORE UPDATE ON notes
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER tags_updated_at BEFORE UPDATE ON tags
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER custom_field_definitions_updated_at BEFORE UPDATE ON custom_field_definitions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER custom_field_values_updated_at BEFORE UPDATE ON custom_field_values
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER attachments_updated_at BEFORE UPDATE ON attachments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER email_templates_updated_at BEFORE UPDATE ON email_templates
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER tenant_settings_updated_at BEFORE UPDATE ON tenant_settings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------------------------------
-- Default pipeline (seeded before row security is switched on)
-- ---------------------------------------------------------------------------------------------------

WITH sales AS (
    INSERT INTO pipelines (name, is_default) VALUES ('Sales', true) RETURNING id
)
INSERT INTO pipeline_stages (pipeline_id, name, position, probability, stage_type)
SELECT sales.id, s.name, s.position, s.probability, s.stage_type
  FROM sales,
       (VALUES ('Qualification', 0, 10, 'open'),
               ('Needs analysis', 1, 25, 'open'),
               ('Proposal', 2, 50, 'open'),
               ('Negotiation', 3, 75, 'open'),
               ('Closed won', 4, 100, 'won'),
               ('Closed lost', 5, 0, 'lost')) AS s (name, position, probability, stage_type);

-- ---------------------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------------------

-- security_invoker: the view shows what the querying user's row policies allow, not the owner's.
CREATE VIEW pipeline_summary WITH (security_invoker = true) AS
SELECT p.id AS pipeline_id,
       p.name AS pipeline_name,
       s.id AS stage_id,
       s.name AS stage_name,
       s.position AS stage_position,
       s.stage_type,
       s.probability,
       d.currency,
       count(d.id) AS deal_count,
       coalesce(sum(d.amount), 0)::numeric(18, 2) AS total_amount,
       coalesce(sum(d.amount * coalesce(d.probability_override, s.probability) / 100), 0)::numeric(18, 2)
           AS weighted_amount
  FROM pipelines p
  JOIN pipeline_stages s ON s.pipeline_id = p.id
  LEFT JOIN deals d ON d.stage_id = s.id AND d.deleted_at IS NULL
 GROUP BY p.id, p.name, s.id, s.name, s.position, s.stage_type, s.probability, d.currency;
COMMENT ON VIEW pipeline_summary IS
    'Per pipeline, stage and currency: deal count, total and probability-weighted amount.';

-- ---------------------------------------------------------------------------------------------------
-- Row-level security
-- ---------------------------------------------------------------------------------------------------

-- Directory: every session may read users (login needs it before identity is known); only admins write,
-- except a user's own profile (crm_users_guard keeps role, status and e-mail admin-only).
ALTER TABLE crm_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm_users FORCE ROW LEVEL SECURITY;
CREATE POLICY crm_users_identity_insert ON crm_users AS RESTRICTIVE FOR INSERT WITH CHECK (app_identity_valid());
CREATE POLICY crm_users_identity_update ON crm_users AS RESTRICTIVE FOR UPDATE USING (app_identity_valid());
CREATE POLICY crm_users_identity_delete ON crm_users AS RESTRICTIVE FOR DELETE USING (app_identity_valid());
CREATE POLICY crm_users_select ON crm_users FOR SELECT USING (true);
CREATE POLICY crm_users_insert ON crm_users FOR INSERT WITH CHECK (app_current_role() = 'admin');
CREATE POLICY crm_users_update ON crm_users FOR UPDATE
    USING (app_current_role() = 'admin' OR (id = app_current_user_id() AND app_current_role() IS NOT NULL))
    WITH CHECK (app_current_role() = 'admin' OR id = app_current_user_id());
CREATE POLICY crm_users_delete ON crm_users FOR DELETE USING (app_current_role() = 'admin');

-- Team rows are read by the visibility helpers themselves: their read policy must not call them.
ALTER TABLE teams ENABLE ROW LEVEL SECURITY;
ALTER TABLE teams FORCE ROW LEVEL SECURITY;
CREATE POLICY teams_identity ON teams AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY teams_select ON teams FOR SELECT USING (app_current_user_id() IS NOT NULL);
CREATE POLICY teams_insert ON teams FOR INSERT WITH CHECK (app_current_role() = 'admin');
CREATE POLICY teams_update ON teams FOR UPDATE USING (app_current_role() = 'admin');
CREATE POLICY teams_delete ON teams FOR DELETE USING (app_current_role() = 'admin');

ALTER TABLE team_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE team_members FORCE ROW LEVEL SECURITY;
CREATE POLICY team_members_identity_insert ON team_members AS RESTRICTIVE FOR INSERT WITH CHECK (app_identity_valid());
CREATE POLICY team_members_identity_update ON team_members AS RESTRICTIVE FOR UPDATE USING (app_identity_valid());
CREATE POLICY team_members_identity_delete ON team_members AS RESTRICTIVE FOR DELETE USING (app_identity_valid());
CREATE POLICY team_members_select ON team_members FOR SELECT USING (app_current_user_id() IS NOT NULL);
CREATE POLICY team_members_insert ON team_members FOR INSERT WITH CHECK (app_current_role() = 'admin');
CREATE POLICY team_members_update ON team_members FOR UPDATE USING (app_current_role() = 'admin');
CREATE POLICY team_members_delete ON team_members FOR DELETE USING (app_current_role() = 'admin');

-- Owned records: read by owner, team (unless private) and admins; written by owner, team managers, admins.
ALTER TABLE companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE companies FORCE ROW LEVEL SECURITY;
CREATE POLICY companies_identity ON companies AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY companies_select ON companies FOR SELECT USING (is_record_visible(owner_id, is_private));
CREATE POLICY companies_insert ON companies FOR INSERT WITH CHECK (can_write_record(owner_id));
CREATE POLICY companies_update ON companies FOR UPDATE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id))
    WITH CHECK (can_write_record(owner_id));
CREATE POLICY companies_delete ON companies FOR DELETE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id));

ALTER TABLE contacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE contacts FORCE ROW LEVEL SECURITY;
CREATE POLICY contacts_identity ON contacts AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY contacts_select ON contacts FOR SELECT USING (is_record_visible(owner_id, is_private));
CREATE POLICY contacts_insert ON contacts FOR INSERT WITH CHECK (can_write_record(owner_id));
CREATE POLICY contacts_update ON contacts FOR UPDATE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id))
    WITH CHECK (can_write_record(owner_id));
CREATE POLICY contacts_delete ON contacts FOR DELETE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id));

ALTER TABLE leads ENABLE ROW LEVEL SECURITY;
ALTER TABLE leads FORCE ROW LEVEL SECURITY;
CREATE POLICY leads_identity ON leads AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY leads_select ON leads FOR SELECT USING (is_record_visible(owner_id, is_private));
CREATE POLICY leads_insert ON leads FOR INSERT WITH CHECK (can_write_record(owner_id));
CREATE POLICY leads_update ON leads FOR UPDATE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id))
    WITH CHECK (can_write_record(owner_id));
CREATE POLICY leads_delete ON leads FOR DELETE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id));

ALTER TABLE deals ENABLE ROW LEVEL SECURITY;
ALTER TABLE deals FORCE ROW LEVEL SECURITY;
CREATE POLICY deals_identity ON deals AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY deals_select ON deals FOR SELECT USING (is_record_visible(owner_id, is_private));
CREATE POLICY deals_insert ON deals FOR INSERT WITH CHECK (can_write_record(owner_id));
CREATE POLICY deals_update ON deals FOR UPDATE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id))
    WITH CHECK (can_write_record(owner_id));
CREATE POLICY deals_delete ON deals FOR DELETE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id));

-- Records attached to others: their own owner rule AND every record they point at must be visible.
ALTER TABLE activities ENABLE ROW LEVEL SECURITY;
ALTER TABLE activities FORCE ROW LEVEL SECURITY;
CREATE POLICY activities_identity ON activities AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY activities_select ON activities FOR SELECT
    USING (is_record_visible(owner_id, is_private) AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY activities_insert ON activities FOR INSERT
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY activities_update ON activities FOR UPDATE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id))
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY activities_delete ON activities FOR DELETE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id));

ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
CREATE POLICY tasks_identity ON tasks AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY tasks_select ON tasks FOR SELECT
    USING (is_record_visible(owner_id, is_private) AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY tasks_insert ON tasks FOR INSERT
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY tasks_update ON tasks FOR UPDATE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id))
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY tasks_delete ON tasks FOR DELETE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id));

ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY notes_identity ON notes AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY notes_select ON notes FOR SELECT
    USING (is_record_visible(owner_id, is_private) AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY notes_insert ON notes FOR INSERT
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY notes_update ON notes FOR UPDATE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id))
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY notes_delete ON notes FOR DELETE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id));

ALTER TABLE attachments ENABLE ROW LEVEL SECURITY;
ALTER TABLE attachments FORCE ROW LEVEL SECURITY;
CREATE POLICY attachments_identity ON attachments AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY attachments_select ON attachments FOR SELECT
    USING (is_record_visible(owner_id, is_private) AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY attachments_insert ON attachments FOR INSERT
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY attachments_update ON attachments FOR UPDATE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id))
    WITH CHECK (can_write_record(owner_id) AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY attachments_delete ON attachments FOR DELETE
    USING (is_record_visible(owner_id, is_private) AND can_write_record(owner_id));

-- Tagging and custom values follow the record they describe.
ALTER TABLE taggings ENABLE ROW LEVEL SECURITY;
ALTER TABLE taggings FORCE ROW LEVEL SECURITY;
CREATE POLICY taggings_identity ON taggings AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY taggings_select ON taggings FOR SELECT
    USING (are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY taggings_insert ON taggings FOR INSERT
    WITH CHECK (tagged_by = app_current_user_id() AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY taggings_delete ON taggings FOR DELETE
    USING (are_targets_visible(company_id, contact_id, lead_id, deal_id));

ALTER TABLE custom_field_values ENABLE ROW LEVEL SECURITY;
ALTER TABLE custom_field_values FORCE ROW LEVEL SECURITY;
CREATE POLICY custom_field_values_identity ON custom_field_values AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY custom_field_values_select ON custom_field_values FOR SELECT
    USING (are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY custom_field_values_insert ON custom_field_values FOR INSERT
    WITH CHECK (app_current_role() IS NOT NULL AND are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY custom_field_values_update ON custom_field_values FOR UPDATE
    USING (are_targets_visible(company_id, contact_id, lead_id, deal_id))
    WITH CHECK (are_targets_visible(company_id, contact_id, lead_id, deal_id));
CREATE POLICY custom_field_values_delete ON custom_field_values FOR DELETE
    USING (are_targets_visible(company_id, contact_id, lead_id, deal_id));

ALTER TABLE deal_stage_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE deal_stage_history FORCE ROW LEVEL SECURITY;
-- Restrictive for reads only: the history trigger also runs for maintenance sessions without a CRM user.
CREATE POLICY deal_stage_history_identity ON deal_stage_history AS RESTRICTIVE FOR SELECT USING (app_identity_valid());
CREATE POLICY deal_stage_history_select ON deal_stage_history FOR SELECT
    USING (are_targets_visible(NULL, NULL, NULL, deal_id));
CREATE POLICY deal_stage_history_insert ON deal_stage_history FOR INSERT
    WITH CHECK (changed_by IS NOT DISTINCT FROM app_current_user_id());

-- Tenant-wide configuration: every active user reads it, admins change it.
ALTER TABLE pipelines ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipelines FORCE ROW LEVEL SECURITY;
CREATE POLICY pipelines_identity ON pipelines AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY pipelines_select ON pipelines FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY pipelines_insert ON pipelines FOR INSERT WITH CHECK (app_current_role() = 'admin');
CREATE POLICY pipelines_update ON pipelines FOR UPDATE USING (app_current_role() = 'admin');
CREATE POLICY pipelines_delete ON pipelines FOR DELETE USING (app_current_role() = 'admin');

ALTER TABLE pipeline_stages ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline_stages FORCE ROW LEVEL SECURITY;
CREATE POLICY pipeline_stages_identity ON pipeline_stages AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY pipeline_stages_select ON pipeline_stages FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY pipeline_stages_insert ON pipeline_stages FOR INSERT WITH CHECK (app_current_role() = 'admin');
CREATE POLICY pipeline_stages_update ON pipeline_stages FOR UPDATE USING (app_current_role() = 'admin');
CREATE POLICY pipeline_stages_delete ON pipeline_stages FOR DELETE USING (app_current_role() = 'admin');

ALTER TABLE tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE tags FORCE ROW LEVEL SECURITY;
CREATE POLICY tags_identity ON tags AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY tags_select ON tags FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY tags_insert ON tags FOR INSERT
    WITH CHECK (app_current_role() IS NOT NULL AND created_by = app_current_user_id());
CREATE POLICY tags_update ON tags FOR UPDATE USING (app_current_role() = 'admin');
CREATE POLICY tags_delete ON tags FOR DELETE USING (app_current_role() = 'admin');

ALTER TABLE custom_field_definitions ENABLE ROW LEVEL SECURITY;
ALTER TABLE custom_field_definitions FORCE ROW LEVEL SECURITY;
CREATE POLICY custom_field_definitions_identity ON custom_field_definitions AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY custom_field_definitions_select ON custom_field_definitions FOR SELECT
    USING (app_current_role() IS NOT NULL);
CREATE POLICY custom_field_definitions_insert ON custom_field_definitions FOR INSERT
    WITH CHECK (app_current_role() = 'admin');
CREATE POLICY custom_field_definitions_update ON custom_field_definitions FOR UPDATE
    USING (app_current_role() = 'admin');
CREATE POLICY custom_field_definitions_delete ON custom_field_definitions FOR DELETE
    USING (app_current_role() = 'admin');

ALTER TABLE tenant_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_settings_identity ON tenant_settings AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY tenant_settings_select ON tenant_settings FOR SELECT USING (app_current_role() IS NOT NULL);
CREATE POLICY tenant_settings_insert ON tenant_settings FOR INSERT WITH CHECK (app_current_role() = 'admin');
CREATE POLICY tenant_settings_update ON tenant_settings FOR UPDATE USING (app_current_role() = 'admin');
CREATE POLICY tenant_settings_delete ON tenant_settings FOR DELETE USING (app_current_role() = 'admin');

-- Personal templates stay personal; shared ones are read by everyone and changed by owner or admins.
ALTER TABLE email_templates ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_templates FORCE ROW LEVEL SECURITY;
CREATE POLICY email_templates_identity ON email_templates AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY email_templates_select ON email_templates FOR SELECT
    USING ((is_shared AND app_current_role() IS NOT NULL) OR is_record_visible(owner_id, true));
CREATE POLICY email_templates_insert ON email_templates FOR INSERT
    WITH CHECK (owner_id = app_current_user_id() AND app_current_role() IS NOT NULL);
CREATE POLICY email_templates_update ON email_templates FOR UPDATE
    USING (is_record_visible(owner_id, true)) WITH CHECK (is_record_visible(owner_id, true));
CREATE POLICY email_templates_delete ON email_templates FOR DELETE USING (is_record_visible(owner_id, true));

-- The log: admins read all of it, others their own actions; rows are attributed to the session user.
ALTER TABLE activity_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE activity_log FORCE ROW LEVEL SECURITY;
CREATE POLICY activity_log_identity ON activity_log AS RESTRICTIVE USING (app_identity_valid()) WITH CHECK (app_identity_valid());
CREATE POLICY activity_log_select ON activity_log FOR SELECT
    USING (app_current_role() = 'admin' OR (actor_id = app_current_user_id() AND app_current_role() IS NOT NULL));
CREATE POLICY activity_log_insert ON activity_log FOR INSERT
    WITH CHECK (actor_id IS NOT DISTINCT FROM app_current_user_id());

-- ---------------------------------------------------------------------------------------------------
-- Privileges of the CRM app role (on this schema's objects only)
-- ---------------------------------------------------------------------------------------------------

GRANT SELECT ON currencies, deal_stage_history, pipeline_summary TO ${app_role};
GRANT SELECT, INSERT, UPDATE, DELETE
    ON teams, team_members, companies, contacts, leads, pipelines, pipeline_stages, deals, activities, tasks,
       notes, tags, custom_field_definitions, custom_field_values, attachments, email_templates, tenant_settings
    TO ${app_role};
GRANT SELECT, INSERT, DELETE ON taggings TO ${app_role};
-- Append-only for the app: no UPDATE or DELETE (the trigger refuses them for everyone else).
GRANT SELECT, INSERT ON activity_log TO ${app_role};
-- crm_users without password_hash: hashes are read and written through the two functions below.
GRANT SELECT (id, email, full_name, role, is_active, title, phone, time_zone, last_login_at, created_at, updated_at),
      INSERT (id, email, full_name, role, is_active, title, phone, time_zone),
      UPDATE (email, full_name, role, is_active, title, phone, time_zone, last_login_at)
    ON crm_users TO ${app_role};
GRANT DELETE ON crm_users TO ${app_role};

GRANT EXECUTE ON FUNCTION
    app_current_user_id(), app_current_role(), app_identity_valid(), is_team_visible(uuid),
    is_record_visible(uuid, boolean),
    can_write_record(uuid), are_targets_visible(uuid, uuid, uuid, uuid), crm_user_login(text),
    crm_user_set_password(uuid, text)
    TO ${app_role};
