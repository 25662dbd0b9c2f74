-- Accounts (issue 15, part 1): one row per account, its current state, maintained
-- from the stream (sinks/account_table.py) and edited through the API (owner, notes).
--
-- The stream writes every field with the event time that set it (the *_at columns)
-- and its upsert only moves a field forward in event time (at one instant, the later
-- write wins), so a replay, a duplicate or an out-of-order batch never moves a field
-- back, and a restart rebuilds the same row. first_seen and last_event_at only move
-- outwards (LEAST, GREATEST); the latest score is the newest by (score_time,
-- score_id), as the API ordered scores before this table.
--
-- owner and notes are also the API's: an edit sets owner_at to its wall-clock time,
-- so a replayed older owner trait does not undo it, and a newer one (a CRM's owner
-- changed since) does. account_owners (0006), which the alert lifecycle and the
-- console read, follows this table's owner and notes, and this table follows it
-- (two triggers; each writes only when a value differs, so they stop after one hop).
CREATE TABLE accounts (
    tenant_id            text        NOT NULL,
    account_id           text        NOT NULL,
    company_name         text,
    company_name_at      timestamptz,
    plan                 text,
    plan_at              timestamptz,
    mrr                  numeric     CHECK (mrr >= 0),
    mrr_at               timestamptz,
    owner                text,
    owner_at             timestamptz,
    renewal_date         date,
    renewal_date_at      timestamptz,
    first_seen           timestamptz,
    last_event_at        timestamptz,
    latest_risk          double precision CHECK (latest_risk >= 0 AND latest_risk <= 1),
    latest_tier          text        CHECK (latest_tier IN ('low', 'medium', 'high')),
    latest_reasons       jsonb       NOT NULL DEFAULT '[]'::jsonb,
    latest_model_version text,
    latest_score_id      uuid,
    latest_score_time    timestamptz,
    latest_expires_at    timestamptz,
    status               text        NOT NULL DEFAULT 'active'
                         CHECK (status IN ('active', 'cancelled')),
    status_at            timestamptz,
    notes                text        NOT NULL DEFAULT '',
    -- the last change of owner or notes: an API user's name, or 'stream' (an owner trait)
    edited_at            timestamptz,
    edited_by            text,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id)
);
-- The at-risk list sorts by risk or MRR (unknown last) within a tenant.
CREATE INDEX accounts_risk ON accounts (tenant_id, (coalesce(latest_risk, -1)) DESC, account_id);
CREATE INDEX accounts_mrr ON accounts (tenant_id, (coalesce(mrr, -1)) DESC, account_id);
CREATE INDEX accounts_owner ON accounts (tenant_id, owner);

-- What the tables written before this one know: each account's latest primary score,
-- the span of its alerts, its last cancellation, and its owner and notes.
INSERT INTO accounts (tenant_id, account_id, latest_risk, latest_tier, latest_reasons,
                      latest_model_version, latest_score_id, latest_score_time,
                      latest_expires_at)
SELECT DISTINCT ON (tenant_id, account_id) tenant_id, account_id, score, tier, reasons,
       model_version, score_id, score_time, expires_at
FROM risk_scores WHERE NOT shadow
ORDER BY tenant_id, account_id, score_time DESC, score_id DESC;

INSERT INTO accounts AS a (tenant_id, account_id, first_seen, last_event_at)
SELECT tenant_id, account_id, min(event_time), max(event_time) FROM alerts GROUP BY 1, 2
ON CONFLICT (tenant_id, account_id) DO UPDATE
SET first_seen = EXCLUDED.first_seen, last_event_at = EXCLUDED.last_event_at;

INSERT INTO accounts AS a (tenant_id, account_id, status, status_at)
SELECT DISTINCT ON (tenant_id, account_id) tenant_id, account_id, 'cancelled', cancelled_at
FROM cancellation_reasons ORDER BY tenant_id, account_id, cancelled_at DESC
ON CONFLICT (tenant_id, account_id) DO UPDATE
SET status = EXCLUDED.status, status_at = EXCLUDED.status_at;

INSERT INTO accounts AS a (tenant_id, account_id, owner, owner_at, notes, edited_at, edited_by)
SELECT tenant_id, account_id, owner, updated_at, notes, updated_at, updated_by
FROM account_owners
ON CONFLICT (tenant_id, account_id) DO UPDATE
SET owner = EXCLUDED.owner, owner_at = EXCLUDED.owner_at, notes = EXCLUDED.notes,
    edited_at = EXCLUDED.edited_at, edited_by = EXCLUDED.edited_by;

-- accounts -> account_owners. Run as the writer's role (the API's is under the tenant
-- policy on both tables); the schema is the trigger's own, whatever the search_path.
CREATE FUNCTION accounts_owner_to_account_owners() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format(
        'INSERT INTO %I.account_owners AS o (tenant_id, account_id, owner, notes, updated_at,'
        ' updated_by) VALUES ($1, $2, $3, $4, $5, $6)'
        ' ON CONFLICT (tenant_id, account_id) DO UPDATE SET owner = EXCLUDED.owner,'
        ' notes = EXCLUDED.notes, updated_at = EXCLUDED.updated_at,'
        ' updated_by = EXCLUDED.updated_by'
        ' WHERE o.owner IS DISTINCT FROM EXCLUDED.owner OR o.notes <> EXCLUDED.notes',
        TG_TABLE_SCHEMA)
    USING NEW.tenant_id, NEW.account_id, NEW.owner, NEW.notes,
          coalesce(NEW.edited_at, now()), coalesce(NEW.edited_by, 'stream');
    RETURN NULL;
END
$fn$;
CREATE TRIGGER accounts_owner_inserted AFTER INSERT ON accounts FOR EACH ROW
    WHEN (NEW.owner IS NOT NULL OR NEW.notes <> '')
    EXECUTE FUNCTION accounts_owner_to_account_owners();
CREATE TRIGGER accounts_owner_updated AFTER UPDATE OF owner, notes ON accounts FOR EACH ROW
    WHEN (OLD.owner IS DISTINCT FROM NEW.owner OR OLD.notes <> NEW.notes)
    EXECUTE FUNCTION accounts_owner_to_account_owners();

-- account_owners -> accounts (a writer of account_owners, such as an older API).
CREATE FUNCTION account_owners_to_accounts() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format(
        'INSERT INTO %I.accounts AS a (tenant_id, account_id, owner, owner_at, notes,'
        ' edited_at, edited_by, updated_at) VALUES ($1, $2, $3, $4, $5, $4, $6, now())'
        ' ON CONFLICT (tenant_id, account_id) DO UPDATE SET owner = EXCLUDED.owner,'
        ' owner_at = CASE WHEN a.owner IS DISTINCT FROM EXCLUDED.owner'
        ' THEN EXCLUDED.owner_at ELSE a.owner_at END,'
        ' notes = EXCLUDED.notes, edited_at = EXCLUDED.edited_at,'
        ' edited_by = EXCLUDED.edited_by, updated_at = now()'
        ' WHERE a.owner IS DISTINCT FROM EXCLUDED.owner OR a.notes <> EXCLUDED.notes',
        TG_TABLE_SCHEMA)
    USING NEW.tenant_id, NEW.account_id, NEW.owner, NEW.updated_at, NEW.notes,
          NEW.updated_by;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER account_owners_changed AFTER INSERT OR UPDATE ON account_owners FOR EACH ROW
    EXECUTE FUNCTION account_owners_to_accounts();

-- The API reads accounts and edits owner and notes (under the per-tenant policy).
-- 0006's setup, run again.
INSERT INTO api_access (table_name, privileges) VALUES
    ('accounts', 'INSERT (tenant_id, account_id, owner, owner_at, notes, edited_at, edited_by,'
                 ' updated_at), UPDATE (owner, owner_at, notes, edited_at, edited_by,'
                 ' updated_at)');

DO $migration$
BEGIN
    PERFORM churnwatch_api_setup();
EXCEPTION WHEN insufficient_privilege OR raise_exception THEN
    RAISE WARNING 'the API role is not set up (%); churnwatch api sets it up at its start',
        SQLERRM;
END
$migration$;
