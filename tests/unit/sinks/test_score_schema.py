"""The risk score message (``score_message``) and its published contract,
``schemas/score.v1.schema.json``: every encoded score validates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import scoring
from accounts.debounce import ScoreRequest
from featurestore.definitions import load_definitions
from schemas import SCHEMA_DIR
from schemas.score import RiskScore, RiskTier
from scoring.model import load_model
from scoring.risk import Blend, RiskPolicy, score_batch
from sinks.kafka import score_message

SCHEMA = orjson.loads((SCHEMA_DIR / "score.v1.schema.json").read_bytes())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
FEATURE_SET = load_definitions()
MODEL = load_model(
    Path(scoring.__file__).parent / "models" / "default", FEATURE_SET.version, FEATURE_SET.names
)
T0 = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)


def assert_valid(document: dict[str, object]) -> None:
    errors = sorted(VALIDATOR.iter_errors(document), key=lambda e: list(e.path))
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []
    # jsonschema checks format "date-time" only with rfc3339-validator installed: check here
    for name in ("score_time", "expires_at"):
        text = str(document[name])
        assert text.endswith("Z") and datetime.fromisoformat(text).tzinfo is not None


def test_the_schema_is_valid_draft_2020_12_and_requires_every_field_sent() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    document = orjson.loads(score_message(_score()).value)
    assert sorted(SCHEMA["required"]) == sorted(document)
    assert sorted(SCHEMA["properties"]) == sorted(document)


def test_the_example_is_valid() -> None:
    assert_valid(orjson.loads((SCHEMA_DIR / "examples" / "score.v1.json").read_bytes()))


@pytest.mark.parametrize("blend", list(Blend))
@pytest.mark.parametrize("shadow", [False, True], ids=["primary", "shadow"])
def test_scores_of_the_shipped_model_validate(blend: Blend, shadow: bool) -> None:
    rng = np.random.default_rng(7)
    width = len(FEATURE_SET.names)
    rows = [
        np.zeros(width), np.ones(width) * 10_000, *rng.gamma(1.0, 20.0, size=(60, width)),
    ]
    requests = [
        ScoreRequest(
            "acme", f"acct-{i}", tuple(float(v) for v in row), T0.timestamp() + i * 61.5,
            rule_risk=(0.0, 0.3, 0.6, 0.9)[i % 4], trigger_event_id=f"evt-{i}",
        )
        for i, row in enumerate(rows)
    ]
    scores = score_batch(requests, MODEL, RiskPolicy(blend=blend), shadow=shadow)
    assert len(scores) == len(requests)
    for score in scores:
        assert_valid(orjson.loads(score_message(score).value))


IDS = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=64)


@settings(max_examples=200, deadline=None)
@given(
    tenant=IDS,
    account=IDS,
    risks=st.tuples(*(st.floats(0.0, 1.0) for _ in range(3))),
    tier=st.sampled_from(list(RiskTier)),
    reasons=st.lists(st.text(min_size=1, max_size=40), max_size=3),
    at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    shadow=st.booleans(),
)
def test_any_score_in_range_validates(
    tenant: str, account: str, risks: tuple[float, float, float], tier: RiskTier,
    reasons: list[str], at: datetime, shadow: bool,
) -> None:
    score = _score(
        tenant_id=tenant, account_id=account, ml_risk=risks[0], rule_risk=risks[1],
        risk=risks[2], tier=tier, reasons=tuple(reasons), score_time=at,
        expires_at=at + timedelta(days=7), shadow=shadow,
    )
    assert_valid(orjson.loads(score_message(score).value))


def _score(**overrides: object) -> RiskScore:
    fields: dict[str, object] = {
        "score_id": "5dc498ee-1784-546f-abaa-df1e1bc9d99d",
        "tenant_id": "acme",
        "account_id": "acct-42",
        "model_version": MODEL.model_version,
        "feature_version": FEATURE_SET.version,
        "ml_risk": 0.41,
        "rule_risk": 0.9,
        "risk": 0.9,
        "tier": RiskTier.HIGH,
        "reasons": ("logins_7d low",),
        "score_time": T0,
        "expires_at": T0 + timedelta(days=7),
        "trigger_event_id": "evt-1",
    }
    fields.update(overrides)
    return RiskScore(**fields)  # type: ignore[arg-type]
