-- Win-back outcomes (issue 15, part 3): what became of each workflow trigger, as the
-- system that runs the workflow reports it on the events topic (workflow.delivered,
-- workflow.engaged, workflow.saved, workflow.lost; attributes trigger_id, step, note).
-- Written by the dataflow like every output: one row per outcome event, its id derived
-- from the event (tenant, account, event id), so a replay or a retry inserts nothing
-- twice. No foreign key to workflow_triggers: the events may arrive before the trigger's
-- row is written, and `churnwatch db prune` ages both; the win-back log joins them.
--
-- With workflow_triggers and workflow_signals this makes the win-back log (api/winback.py)
-- and the experiment reports (`churnwatch experiment report`, GET /v1/experiments/{key}).
CREATE TABLE workflow_outcomes (
    outcome_id   uuid PRIMARY KEY,            -- UUIDv5(tenant, account, event_id)
    trigger_id   uuid        NOT NULL,
    tenant_id    text        NOT NULL,
    account_id   text        NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('delivered', 'engaged', 'saved', 'lost')),
    step         text,                        -- the workflow's next step, as it names it
    note         text,
    event_id     text        NOT NULL,
    source       text        NOT NULL,
    occurred_at  timestamptz NOT NULL,        -- event time
    inserted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_outcomes_trigger ON workflow_outcomes (tenant_id, trigger_id, occurred_at);
CREATE INDEX workflow_outcomes_account_time ON workflow_outcomes (tenant_id, account_id, occurred_at);
-- The win-back log lists a tenant's triggers newest first (ties by id: its keyset), a
-- page read off this index backwards; experiment reports read one experiment's
-- assignments.
CREATE INDEX workflow_triggers_tenant_time ON workflow_triggers
    (tenant_id, triggered_at, trigger_id);
CREATE INDEX experiment_assignments_experiment ON experiment_assignments
    (experiment_key, tenant_id, assigned_at);

-- The API role reads both (under the per-tenant policy): outcomes for the win-back log
-- and the timeline, assignments for experiment reports. 0006's setup, run again.
INSERT INTO api_access (table_name, privileges) VALUES
    ('workflow_outcomes', NULL),
    ('experiment_assignments', NULL);

DO $migration$
BEGIN
    PERFORM churnwatch_api_setup();
EXCEPTION WHEN insufficient_privilege OR raise_exception THEN
    RAISE WARNING 'the API role is not set up (%); churnwatch api sets it up at its start',
        SQLERRM;
END
$migration$;
