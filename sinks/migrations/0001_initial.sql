-- Alerts and cancellations: the authoritative, queryable record.
-- Ids are deterministic (UUIDv5 of the inputs), so replays insert nothing new.

CREATE TABLE alerts (
    alert_id           uuid PRIMARY KEY,
    tenant_id          text        NOT NULL,
    account_id         text        NOT NULL,
    tier               smallint    NOT NULL CHECK (tier IN (1, 2, 3)),
    rule               text        NOT NULL,
    severity           text        NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    trigger_event_id   text        NOT NULL,
    trigger_event_type text        NOT NULL,
    event_time         timestamptz NOT NULL,
    reasons            jsonb       NOT NULL DEFAULT '[]'::jsonb,
    inserted_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_account_time ON alerts (tenant_id, account_id, event_time);

CREATE TABLE cancellation_reasons (
    cancellation_id uuid PRIMARY KEY,
    tenant_id       text        NOT NULL,
    account_id      text        NOT NULL,
    event_id        text        NOT NULL,
    cancelled_at    timestamptz NOT NULL,
    reason_code     text,
    inserted_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, account_id, event_id)
);
CREATE INDEX cancellation_reasons_time ON cancellation_reasons (tenant_id, cancelled_at);
