"""The default model shipped in scoring/models/default matches the live definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

import scoring
from featurestore.definitions import load_definitions
from scoring.model import load_model

DEFAULT_MODEL = Path(scoring.__file__).parent / "models" / "default"


def test_shipped_model_loads_against_the_live_definitions() -> None:
    # Fails when the feature definitions change without 'make model' being rerun.
    feature_set = load_definitions()
    model = load_model(DEFAULT_MODEL, feature_set.version, feature_set.names)
    risk, contributions = model.score(np.zeros((3, len(feature_set.names)), dtype=np.float32))
    assert risk.shape == (3,) and contributions.shape == (3, len(feature_set.names))
    assert np.all((risk > 0) & (risk < 1))


def test_shipped_model_records_how_it_was_made() -> None:
    metadata = orjson.loads((DEFAULT_MODEL / "metadata.json").read_bytes())
    assert metadata["horizon_days"] == 14
    assert metadata["holdout_metrics"]["roc_auc"] >= 0.8
    assert metadata["created_from"].startswith("train-history.jsonl sha256:")
