-- Per-subject erasure (schemas/erasure.py, sinks/erasure.py).

-- One receipt per erasure: what was removed, when, by whom. It names the subject
-- by digest only (SHA-256 of its ids), so the receipt is no trace of it.
CREATE TABLE erasures (
    erasure_id        uuid PRIMARY KEY,
    tenant_id         text        NOT NULL,
    subject_digest    text        NOT NULL,
    scope             text        NOT NULL CHECK (scope IN ('account', 'user')),
    requested_by      text        NOT NULL,
    requested_at      timestamptz NOT NULL,
    removed           jsonb       NOT NULL,   -- rows per table (and the Redis hash)
    stream_erased_at  timestamptz,            -- when the dataflow read the erasure
    stream_removed    jsonb                   -- what it removed that was written meanwhile
);
CREATE INDEX erasures_subject ON erasures (tenant_id, subject_digest);

-- The contact ledger stays append-only, with one audited exception: an erasure
-- replaces the account (and the row's id, derived from it) by a tombstone, in a
-- transaction that names its receipt (SET LOCAL churnwatch.erasure_id). The row,
-- its channel, workflow and time stay, so contact counts do not change.
CREATE OR REPLACE FUNCTION contact_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    erasure text := current_setting('churnwatch.erasure_id', true);
BEGIN
    IF TG_OP = 'UPDATE' AND erasure IS NOT NULL AND erasure <> ''
       AND NEW.account_id = 'erased:' || erasure
       AND NEW.tenant_id = OLD.tenant_id
       AND NEW.channel = OLD.channel
       AND NEW.workflow_key = OLD.workflow_key
       AND NEW.episode = OLD.episode
       AND NEW.contacted_at = OLD.contacted_at
       AND NEW.inserted_at = OLD.inserted_at
       AND EXISTS (SELECT 1 FROM erasures WHERE erasure_id = erasure::uuid) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'contact_ledger is append-only (% refused)', TG_OP;
END $$;
