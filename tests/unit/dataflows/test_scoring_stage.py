"""dataflows.flow.ScoringStage over a ModelHolder: each batch scored by the live model."""

from __future__ import annotations

from pathlib import Path

from accounts.debounce import ScoreRequest
from dataflows.flow import ScoringStage
from schemas.score import RiskScore
from scoring.reload import ModelHolder
from scoring.risk import RiskPolicy
from tests.unit.scoring.test_model import NAMES, VERSION, make_trained
from training.save import save_model


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def request(account: str) -> ScoreRequest:
    return ScoreRequest("acme", account, (1.0, 3.0, 12.0, 0.5), 1_790_000_000.0, 0.0, "e1")


def test_a_swapped_model_scores_from_the_next_batch_on_primary_and_shadow(
    tmp_path: Path,
) -> None:
    clock = Clock()
    primary_dir, shadow_dir = tmp_path / "primary", tmp_path / "shadow"
    old = save_model(make_trained(), primary_dir).model_version
    shadow_version = save_model(make_trained(bias=-3.0), shadow_dir).model_version

    def holder(directory: Path, role: str) -> ModelHolder:
        return ModelHolder(directory, VERSION, NAMES, check_seconds=10, settle_seconds=1,
                           role=role, clock=clock)

    stage = ScoringStage(holder(primary_dir, "primary"), RiskPolicy(),
                         holder(shadow_dir, "shadow"))
    batch: list[object] = [request("a"), "a lifecycle change", request("b")]
    first = stage.score(list(batch))
    assert first[2] == "a lifecycle change"  # other items keep their place
    scores = [s for s in first if isinstance(s, RiskScore)]
    assert [(s.model_version, s.shadow) for s in scores] == [
        (old, False), (shadow_version, True), (old, False), (shadow_version, True)
    ]
    new = save_model(make_trained(bias=-1.0), primary_dir).model_version
    clock.now += 10
    stage.score(list(batch))  # sees the change
    clock.now += 1
    swapped = [s for s in stage.score(list(batch)) if isinstance(s, RiskScore)]
    assert [(s.model_version, s.shadow) for s in swapped] == [
        (new, False), (shadow_version, True), (new, False), (shadow_version, True)
    ]
