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

-- The API role reads both (under the per-tenant policy); history is append-only for
-- it: it may mark a row published, nothing else. 0006's setup, run again.
INSERT INTO api_access (table_name, privileges) VALUES
    ('alert_states', 'INSERT, UPDATE'),
    ('alert_state_history', 'INSERT, UPDATE (published_at)');

DO $migration$
BEGIN
    PERFORM churnwatch_api_setup();
EXCEPTION WHEN insufficient_privilege OR raise_exception THEN
    RAISE WARNING 'the API role is not set up (%); churnwatch api sets it up at its start',
        SQLERRM;
END
$migration$;
