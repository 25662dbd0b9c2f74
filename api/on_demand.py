"""On-demand scoring: the live model over one feature vector, as the stream scores.

The vector is the account's current features from the online store (Redis), or one
the caller supplies, which must name every feature of the model with a number and
nothing else (422 naming the first field at fault). The score goes through
:func:`scoring.risk.score_batch`, the stream's own function, so the model risk,
tier and reasons are the stream's for the same vector. What the stream adds and a
feature vector does not carry is the rule risk of a recent decisive event (payment
failed, cancel intent, downgrade): it is 0 here, so ``risk`` is the model's risk
blended with no rule risk. Nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from accounts.debounce import ScoreRequest
from api.errors import InvalidInput
from scoring.model import RiskModel
from scoring.risk import RiskPolicy, score_batch


@dataclass(frozen=True, slots=True)
class VectorScore:
    risk: float
    ml_risk: float
    tier: str
    reasons: tuple[str, ...]
    model_version: str
    feature_version: str


def feature_vector(supplied: Mapping[str, object], names: Sequence[str]) -> tuple[float, ...]:
    """``supplied`` as a vector in ``names`` order; :class:`InvalidInput` naming the field
    (``features.<name>``) that is unknown, missing, or not a finite number."""
    known = set(names)
    for name, value in supplied.items():
        if name not in known:
            raise InvalidInput(f"not a feature of the live model (it has {len(names)}: see"
                               " GET .../features)", f"features.{name}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput("must be a number", f"features.{name}")
        if not math.isfinite(value):
            raise InvalidInput("must be a finite number", f"features.{name}")
    missing = [name for name in names if name not in supplied]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InvalidInput(f"every feature of the live model is required{more}",
                           f"features.{missing[0]}")
    return tuple(float(supplied[name]) for name in names)  # type: ignore[arg-type]


def score_vector(
    model: RiskModel, policy: RiskPolicy, tenant_id: str, account_id: str,
    values: Sequence[float], as_of: datetime | None = None,
) -> VectorScore:
    """Score one vector (in the model's feature order) as the stream would, rule risk 0."""
    moment = (as_of or datetime.now(UTC)).timestamp()
    request = ScoreRequest(tenant_id, account_id, tuple(values), moment, 0.0, "on-demand")
    [score] = score_batch([request], model, policy)
    return VectorScore(
        risk=score.risk, ml_risk=score.ml_risk, tier=str(score.tier), reasons=score.reasons,
        model_version=score.model_version, feature_version=score.feature_version,
    )
