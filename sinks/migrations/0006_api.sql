-- The REST API (api/, issue 15): its users, account ownership, and row-level
-- security by tenant on every table it reads.
--
-- The API connects as (or SET ROLEs to) a role of its own, "<schema>_api"
-- (churnwatch_api for the default schema: role names are cluster-wide, so each
-- schema has its own). That role may read the tables below and nothing else, and
-- a restrictive policy shows it only the rows of the tenant its transaction names
-- (SET LOCAL churnwatch.tenant = ...); with no tenant named it sees no row, so a
-- query that forgot its tenant filter still sees one tenant only.
--
-- Other roles are not restricted: a permissive policy lets them see every row as
-- before (a reporting role keeps working), and the table owner (the dataflow,
-- which creates these tables) bypasses row-level security altogether, since it
-- is ENABLEd, never FORCEd.

-- API users: one bearer token each, stored as its SHA-256 (hex) only.
CREATE TABLE api_users (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    text        NOT NULL,
    name         text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('admin', 'coordinator', 'agent')),
    token_sha256 text        NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    disabled_at  timestamptz,
    UNIQUE (tenant_id, name)
);

-- Who looks after an account (an API user's name) and their notes; edited
-- through the API. A row appears on the first edit.
CREATE TABLE account_owners (
    tenant_id  text        NOT NULL,
    account_id text        NOT NULL,
    owner      text,
    notes      text        NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL,
    PRIMARY KEY (tenant_id, account_id)
);
CREATE INDEX account_owners_owner ON account_owners (tenant_id, owner);

-- The API's timeline and alert queries read by account and time; alerts also by
-- tenant and time (the alert list).
CREATE INDEX alerts_tenant_time ON alerts (tenant_id, event_time);
CREATE INDEX workflow_triggers_account_time ON workflow_triggers (tenant_id, account_id, triggered_at);
CREATE INDEX workflow_signals_account_time ON workflow_signals (tenant_id, account_id, signalled_at);
CREATE INDEX cancellation_reasons_account ON cancellation_reasons (tenant_id, account_id);

-- The tables the API role reads (every one under the per-tenant policy), and what
-- else it may do to each. A later migration adds rows here and runs the setup again.
CREATE TABLE api_access (
    table_name text PRIMARY KEY,
    privileges text                       -- beyond SELECT, e.g. 'INSERT, UPDATE'
);
INSERT INTO api_access (table_name, privileges) VALUES
    ('alerts', NULL), ('risk_scores', NULL), ('usage_signals', NULL), ('decisions', NULL),
    ('workflow_triggers', NULL), ('workflow_signals', NULL), ('cancellation_reasons', NULL),
    ('account_owners', 'INSERT, UPDATE'),
    ('api_users', 'INSERT (tenant_id, name, role, token_sha256), UPDATE (disabled_at)');

-- The API role's setup, idempotent: the role, its grants and the restrictive
-- policies. Run here when churnwatch's user may create roles, and by `churnwatch
-- api` at every start otherwise; the dataflow never needs it, so a deployment
-- whose user may not create roles runs unchanged until the API is wanted.
CREATE FUNCTION churnwatch_api_setup() RETURNS void LANGUAGE plpgsql AS $setup$
DECLARE
    api_role  text := left(current_schema() || '_api', 63);
    schema    text := current_schema();
    api_table text;
    extra     text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = api_role) THEN
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS', api_role);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'the API role % does not exist and % may not create roles',
                api_role, current_user
                USING HINT = format('As a superuser: CREATE ROLE %I NOLOGIN; GRANT %I TO %I;'
                                    ' then start the API again.', api_role, api_role,
                                    current_user);
        END;
    END IF;
    -- The API may connect with churnwatch's own URL and SET ROLE to the API role
    -- (a superuser may always; another user needs the membership, and from
    -- PostgreSQL 16 on its SET option: the ADMIN OPTION a role's creator gets
    -- by itself does not allow SET ROLE).
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, api_role,
                           CASE WHEN current_setting('server_version_num')::int >= 160000
                                THEN 'SET' ELSE 'MEMBER' END) THEN
        BEGIN
            EXECUTE format('GRANT %I TO %I', api_role, current_user);
        EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
            RAISE WARNING 'could not grant % to %: give the API its own URL'
                          ' (CHURNWATCH_API_DATABASE_URL) of a member of %',
                          api_role, current_user, api_role;
        END;
    END IF;

    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', schema, api_role);
    FOR api_table, extra IN SELECT table_name, privileges FROM api_access LOOP
        EXECUTE format('GRANT SELECT ON %I TO %I', api_table, api_role);
        IF extra IS NOT NULL THEN
            EXECUTE format('GRANT %s ON %I TO %I', extra, api_table, api_role);
        END IF;
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', api_table);
        EXECUTE format('DROP POLICY IF EXISTS every_row ON %I', api_table);
        EXECUTE format('CREATE POLICY every_row ON %I USING (true) WITH CHECK (true)', api_table);
        EXECUTE format('DROP POLICY IF EXISTS api_tenant ON %I', api_table);
        EXECUTE format(
            'CREATE POLICY api_tenant ON %I AS RESTRICTIVE TO %I'
            ' USING (tenant_id = current_setting(''churnwatch.tenant'', true))'
            ' WITH CHECK (tenant_id = current_setting(''churnwatch.tenant'', true))',
            api_table, api_role);
    END LOOP;

    -- Authentication comes before the tenant is known: this one lookup runs as the
    -- owner (SECURITY DEFINER), by token digest, and returns enabled users only.
    EXECUTE format($fn$
        CREATE OR REPLACE FUNCTION api_authenticate(token_digest text)
        RETURNS TABLE (user_id uuid, tenant_id text, name text, role text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = %I, pg_temp
        AS 'SELECT u.id, u.tenant_id, u.name, u.role FROM api_users u
            WHERE u.token_sha256 = token_digest AND u.disabled_at IS NULL'
    $fn$, schema);
    REVOKE ALL ON FUNCTION api_authenticate(text) FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON FUNCTION api_authenticate(text) TO %I', api_role);
END
$setup$;

DO $migration$
BEGIN
    PERFORM churnwatch_api_setup();
EXCEPTION WHEN insufficient_privilege OR raise_exception THEN
    RAISE WARNING 'the API role is not set up (%); churnwatch api sets it up at its start',
        SQLERRM;
END
$migration$;
