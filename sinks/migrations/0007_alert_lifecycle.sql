-- The alert lifecycle (issue 15, part 2): each alert's status, assignee and notes,
-- and the history of every change, which is also the outbox of the
-- churn.alert-states topic (published_at: when the API's producer had it
-- delivered; NULL: not yet).
--
-- The stream never writes here: an alert without a row is open, assigned to its
-- account's owner. The API writes a row at the first change. There is no foreign
-- key to alerts, which `churnwatch db prune` deletes by age.
--
-- `expired` is never stored: an alert that is not resolved reads as expired once
-- its status was last set (status_since, else its event time; or the end of its
-- snooze) longer ago than the API's CHURNWATCH_ALERT_EXPIRY_DAYS (computed at read
-- time, so changing the setting takes effect at once and nothing runs on a schedule).
CREATE TABLE alert_states (
    alert_id      uuid PRIMARY KEY,
    tenant_id     text        NOT NULL,
    account_id    text        NOT NULL,
    status        text        NOT NULL
                  CHECK (status IN ('open', 'acknowledged', 'snoozed', 'resolved')),
    snoozed_until timestamptz,
    resolution    text,
    assignee      text,
    notes         text        NOT NULL DEFAULT '',
    -- when the status was last set (NULL: never, the alert's event time counts)
    status_since  timestamptz,
    version       integer     NOT NULL DEFAULT 1,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text        NOT NULL,
    CHECK ((status = 'snoozed') = (snoozed_until IS NOT NULL)),
    CHECK ((status = 'resolved') = (resolution IS NOT NULL))
);
CREATE INDEX alert_states_account ON alert_states (tenant_id, account_id);
CREATE INDEX alert_states_assignee ON alert_states (tenant_id, assignee);

CREATE TABLE alert_state_history (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id      uuid        NOT NULL,
    tenant_id     text        NOT NULL,
    account_id    text        NOT NULL,
    version       integer     NOT NULL,
    action        text        NOT NULL
                  CHECK (action IN ('acknowledge', 'assign', 'snooze', 'resolve', 'note',
                                    'reopen')),
    at            timestamptz NOT NULL DEFAULT now(),
    by            text        NOT NULL,
    from_status   text        NOT NULL,
    to_status     text        NOT NULL,
    from_assignee text,
    to_assignee   text,
    snoozed_until timestamptz,
    resolution    text,
    note          text,
    published_at  timestamptz,
    UNIQUE (alert_id, version)
);
CREATE INDEX alert_state_history_alert ON alert_state_history (tenant_id, alert_id, id);
CREATE INDEX alert_state_history_unpublished ON alert_state_history (tenant_id, id)
    WHERE published_at IS NULL;

-- 0006's setup, again, with the two new tables: same role, same policies.
CREATE OR REPLACE FUNCTION churnwatch_api_setup() RETURNS void LANGUAGE plpgsql AS $setup$
DECLARE
    api_role  text := left(current_schema() || '_api', 63);
    schema    text := current_schema();
    api_table text;
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
    FOREACH api_table IN ARRAY ARRAY[
        'alerts', 'risk_scores', 'usage_signals', 'decisions', 'workflow_triggers',
        'workflow_signals', 'cancellation_reasons', 'account_owners', 'api_users',
        'alert_states', 'alert_state_history'
    ] LOOP
        EXECUTE format('GRANT SELECT ON %I TO %I', api_table, api_role);
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
    EXECUTE format('GRANT INSERT, UPDATE ON account_owners TO %I', api_role);
    EXECUTE format('GRANT INSERT (tenant_id, name, role, token_sha256), UPDATE (disabled_at)'
                   ' ON api_users TO %I', api_role);
    EXECUTE format('GRANT INSERT, UPDATE ON alert_states TO %I', api_role);
    -- History is append-only for the API: it may mark a row published, nothing else.
    EXECUTE format('GRANT INSERT, UPDATE (published_at) ON alert_state_history TO %I',
                   api_role);

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
