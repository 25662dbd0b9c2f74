-- Usage signals (login_drop, seat_drop, feature_drop, inactivity, renewal_at_risk):
-- at most one per account, type and episode; signal_id is deterministic.

CREATE TABLE usage_signals (
    signal_id       uuid PRIMARY KEY,
    tenant_id       text             NOT NULL,
    account_id      text             NOT NULL,
    signal_type     text             NOT NULL,
    usage_count     double precision NOT NULL,
    baseline_count  double precision NOT NULL,
    signal_date     date             NOT NULL,
    feature_version text             NOT NULL,
    severity        text             NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    inserted_at     timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX usage_signals_account ON usage_signals (tenant_id, account_id, signal_date);
