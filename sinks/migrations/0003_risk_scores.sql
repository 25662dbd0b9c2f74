-- Risk scores: every score of every model (shadow models included), idempotent
-- by score_id (UUIDv5 of tenant, account, model_version and score time).

CREATE TABLE risk_scores (
    score_id         uuid PRIMARY KEY,
    tenant_id        text             NOT NULL,
    account_id       text             NOT NULL,
    score            double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    ml_score         double precision NOT NULL,
    rule_score       double precision NOT NULL,
    tier             text             NOT NULL CHECK (tier IN ('low', 'medium', 'high')),
    model_version    text             NOT NULL,
    feature_version  text             NOT NULL,
    shadow           boolean          NOT NULL DEFAULT false,
    reasons          jsonb            NOT NULL DEFAULT '[]'::jsonb,
    trigger_event_id text             NOT NULL,
    score_time       timestamptz      NOT NULL,
    expires_at       timestamptz      NOT NULL,
    inserted_at      timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX risk_scores_account_time ON risk_scores (tenant_id, account_id, score_time);
