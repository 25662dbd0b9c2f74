-- Decisions and workflow triggers (scoring/decision.py).
-- Every row carries a deterministic id, so a replay or a retry inserts nothing twice.

-- Every decision, "ignore" included: what the policy's rule said, what was
-- decided after eligibility, caps and experiments, and why.
CREATE TABLE decisions (
    decision_id    uuid PRIMARY KEY,          -- UUIDv5(tenant, account, alert, policy_version)
    tenant_id      text        NOT NULL,
    account_id     text        NOT NULL,
    alert_id       uuid        NOT NULL,
    trigger        text        NOT NULL,       -- the alert's rule
    score_id       uuid,
    risk           double precision,
    tier           text,
    policy_version text        NOT NULL,
    rule           text,
    rule_decision  text,
    decision       text        NOT NULL
        CHECK (decision IN ('ignore', 'start_workflow', 'escalate', 'holdout')),
    workflow_key   text,
    reasons        jsonb       NOT NULL,       -- reason codes: cap_hit, holdout, not_eligible_* ...
    detail         text        NOT NULL,
    experiment_key text,
    variant        text,
    trigger_id     uuid,                       -- the workflow trigger emitted, if any
    decided_at     timestamptz NOT NULL,       -- event time of the trigger
    inserted_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_account_time ON decisions (tenant_id, account_id, decided_at);
CREATE INDEX decisions_policy_decision ON decisions (policy_version, decision);

CREATE TABLE workflow_triggers (
    trigger_id     uuid PRIMARY KEY,           -- UUIDv5 of the idempotency key below
    tenant_id      text        NOT NULL,
    account_id     text        NOT NULL,
    workflow_key   text        NOT NULL,
    episode        text        NOT NULL,
    action         text        NOT NULL CHECK (action IN ('start_workflow', 'escalate')),
    channel        text        NOT NULL,
    decision_id    uuid        NOT NULL,
    alert_id       uuid        NOT NULL,
    trigger        text        NOT NULL,
    score_id       uuid,
    risk           double precision,
    tier           text,
    reasons        jsonb       NOT NULL,
    experiment_key text,
    variant        text,
    policy_version text        NOT NULL,
    triggered_at   timestamptz NOT NULL,
    active_until   timestamptz NOT NULL,
    inserted_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT workflow_triggers_idempotency UNIQUE (tenant_id, workflow_key, account_id, episode)
);

CREATE TABLE workflow_signals (
    signal_id      uuid PRIMARY KEY,           -- UUIDv5(trigger_id, signal)
    trigger_id     uuid        NOT NULL,
    tenant_id      text        NOT NULL,
    account_id     text        NOT NULL,
    workflow_key   text        NOT NULL,
    episode        text        NOT NULL,
    signal         text        NOT NULL CHECK (signal IN ('recovered', 'cancelled', 'opted_out')),
    cause          text        NOT NULL,
    cause_id       text        NOT NULL,
    signalled_at   timestamptz NOT NULL,
    inserted_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_signals_trigger ON workflow_signals (trigger_id);

-- Append-only: one row per contact a workflow trigger makes, written in the
-- same transaction as the trigger. Frequency caps are checked against the
-- flow's in-memory window, which this ledger must always agree with.
CREATE TABLE contact_ledger (
    contact_id     uuid PRIMARY KEY,           -- = the workflow trigger's id
    tenant_id      text        NOT NULL,
    account_id     text        NOT NULL,
    channel        text        NOT NULL,
    workflow_key   text        NOT NULL,
    episode        text        NOT NULL,
    contacted_at   timestamptz NOT NULL,       -- event time
    inserted_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_ledger_window ON contact_ledger (tenant_id, account_id, channel, contacted_at);

CREATE FUNCTION contact_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'contact_ledger is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER contact_ledger_append_only BEFORE UPDATE OR DELETE ON contact_ledger
    FOR EACH ROW EXECUTE FUNCTION contact_ledger_append_only();
CREATE TRIGGER contact_ledger_no_truncate BEFORE TRUNCATE ON contact_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION contact_ledger_append_only();

-- Do-not-contact: the latest word per account, from account.consent_changed
-- events (written by the flow) or from other systems (a CRM may write here).
-- updated_at is event time: an older change never overwrites a newer one.
CREATE TABLE contact_preferences (
    tenant_id       text        NOT NULL,
    account_id      text        NOT NULL,
    contact_allowed boolean     NOT NULL,
    updated_at      timestamptz NOT NULL,
    source          text        NOT NULL,      -- 'event:<event_id>' or the writing system
    recorded_at     timestamptz NOT NULL DEFAULT now(),  -- the directory reads by this
    PRIMARY KEY (tenant_id, account_id)
);
CREATE INDEX contact_preferences_recorded ON contact_preferences (recorded_at);

-- Each experiment's split as first seen: a policy that changes the split of an
-- existing experiment key is refused at start (assignments would reshuffle).
CREATE TABLE experiments (
    experiment_key text PRIMARY KEY,
    workflow_key   text        NOT NULL,
    split          jsonb       NOT NULL,       -- [["holdout", 20], ["coaching", 40], ...]
    policy_version text        NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE experiment_assignments (
    tenant_id      text        NOT NULL,
    account_id     text        NOT NULL,
    experiment_key text        NOT NULL,
    variant        text        NOT NULL,
    bucket         smallint    NOT NULL CHECK (bucket BETWEEN 0 AND 99),
    assigned_at    timestamptz NOT NULL,       -- event time of the first exposure
    policy_version text        NOT NULL,
    PRIMARY KEY (tenant_id, account_id, experiment_key)
);
