"""scoring.reload.ModelHolder: a changed model directory swapped in, a bad one refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest

from accounts.debounce import ScoreRequest
from scoring.errors import ModelFileError, ModelMismatchError
from scoring.model import METADATA_FILE, MODEL_FILE, RiskModel, load_model
from scoring.reload import ModelHolder, live_model
from scoring.risk import RiskPolicy, score_batch
from tests.unit.scoring.test_model import NAMES, VERSION, make_trained
from training.save import save_model

CHECK = 30.0
SETTLE = 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    save_model(make_trained(), directory)
    return directory


@pytest.fixture
def clock() -> Clock:
    return Clock()


def holder_of(directory: Path, clock: Clock, heard: list[tuple[str, str]] | None = None,
              **kw: float) -> ModelHolder:
    def on_change(outcome: str, model: RiskModel) -> None:
        if heard is not None:
            heard.append((outcome, model.model_version))

    return ModelHolder(directory, VERSION, NAMES, check_seconds=kw.get("check", CHECK),
                       settle_seconds=kw.get("settle", SETTLE), on_change=on_change, clock=clock)


def replace_with_trained(directory: Path, **overrides: object) -> str:
    """Write another valid model over ``directory`` (as ``churnwatch train`` does)."""
    return save_model(make_trained(**overrides), directory).model_version


def look_twice(holder: ModelHolder, clock: Clock) -> RiskModel:
    """A due check (it sees the change), then one after the settle time (it judges)."""
    clock.now += CHECK
    holder.current()
    clock.now += SETTLE
    return holder.current()


def test_a_changed_model_is_swapped_in_once_it_has_settled(
    model_dir: Path, clock: Clock
) -> None:
    heard: list[tuple[str, str]] = []
    holder = holder_of(model_dir, clock, heard)
    first = holder.current()
    new_version = replace_with_trained(model_dir, weights=(-1.0, 0.5, 0.1, 0.3))
    assert new_version != first.model_version
    clock.now += CHECK - 1
    assert holder.current() is first  # not due for a check yet
    clock.now += 1
    assert holder.current() is first  # the change is seen, not judged yet
    clock.now += SETTLE
    assert holder.current().model_version == new_version
    assert (holder.reloaded, holder.rejected) == (1, 0)
    assert heard == [("loaded", first.model_version), ("accepted", new_version)]
    clock.now += CHECK
    assert holder.current().model_version == new_version
    assert holder.reloaded == 1


def test_files_still_changing_are_not_judged(model_dir: Path, clock: Clock) -> None:
    holder = holder_of(model_dir, clock)
    first = holder.current()
    clock.now += CHECK
    (model_dir / MODEL_FILE).write_bytes(b"half of a new mo")
    holder.current()  # sees the change
    clock.now += SETTLE
    (model_dir / MODEL_FILE).write_bytes(b"half of a new model, more of it")
    assert holder.current() is first  # changed again since: not judged
    assert holder.rejected == 0
    new_version = replace_with_trained(model_dir, bias=-1.0)
    clock.now += SETTLE
    holder.current()
    clock.now += SETTLE
    assert holder.current().model_version == new_version
    assert (holder.reloaded, holder.rejected) == (1, 0)


def test_a_half_written_pair_is_refused_and_the_whole_pair_then_taken(
    model_dir: Path, clock: Clock, tmp_path: Path
) -> None:
    # model.onnx replaced, metadata.json not yet: the old metadata names another hash.
    heard: list[tuple[str, str]] = []
    holder = holder_of(model_dir, clock, heard)
    first = holder.current()
    staged = tmp_path / "staged"
    new_version = replace_with_trained(staged, weights=(-2.0, 0.8, 0.05, 0.4))
    shutil.copyfile(staged / MODEL_FILE, model_dir / MODEL_FILE)
    assert look_twice(holder, clock) is first
    assert (holder.reloaded, holder.rejected) == (0, 1)
    shutil.copyfile(staged / METADATA_FILE, model_dir / METADATA_FILE)
    assert look_twice(holder, clock).model_version == new_version
    assert heard == [("loaded", first.model_version), ("refused", first.model_version),
                     ("accepted", new_version)]


def test_a_truncated_model_is_refused_and_the_last_good_one_kept(
    model_dir: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    holder = holder_of(model_dir, clock)
    first = holder.current()
    data = (model_dir / MODEL_FILE).read_bytes()
    (model_dir / MODEL_FILE).write_bytes(data[: len(data) // 2])
    assert look_twice(holder, clock) is first
    assert holder.rejected == 1
    assert "refused; keeping " + first.model_version in caplog.text
    assert "hashes to" in caplog.text
    clock.now += CHECK
    assert holder.current() is first
    assert holder.rejected == 1  # the same bad files are refused once, not at every check


def test_metadata_naming_unknown_features_is_refused(model_dir: Path, clock: Clock) -> None:
    holder = holder_of(model_dir, clock)
    first = holder.current()
    document = orjson.loads((model_dir / METADATA_FILE).read_bytes())
    document["feature_names"][1] = "days_since_last_login"
    document["coefficients"]["days_since_last_login"] = document["coefficients"].pop(
        "days_since_last_activity"
    )
    (model_dir / METADATA_FILE).write_bytes(orjson.dumps(document))
    with pytest.raises(ModelMismatchError):  # what the holder meets
        load_model(model_dir, VERSION, NAMES)
    assert look_twice(holder, clock) is first
    assert holder.rejected == 1


def test_a_model_trained_on_other_features_is_refused(model_dir: Path, clock: Clock) -> None:
    holder = holder_of(model_dir, clock)
    first = holder.current()
    replace_with_trained(model_dir, feature_version="fedcba9876543210")
    assert look_twice(holder, clock) is first
    assert holder.rejected == 1


def test_a_model_scoring_nan_is_refused_at_load_and_on_reload(
    model_dir: Path, clock: Clock, tmp_path: Path
) -> None:
    # An honest file (its hash is in its metadata) whose answers are not risks.
    broken = tmp_path / "nan"
    save_model(make_trained(std=(0.0, 2.5, 9.0, 1.0)), broken)  # x / 0 on the probe rows
    with pytest.raises(ModelFileError, match="probe"):
        load_model(broken, VERSION, NAMES)
    holder = holder_of(model_dir, clock)
    first = holder.current()
    for name in (MODEL_FILE, METADATA_FILE):
        shutil.copyfile(broken / name, model_dir / name)
    assert look_twice(holder, clock) is first
    assert holder.rejected == 1


def test_a_removed_directory_keeps_the_last_good_model(model_dir: Path, clock: Clock) -> None:
    holder = holder_of(model_dir, clock)
    first = holder.current()
    shutil.rmtree(model_dir)
    assert look_twice(holder, clock) is first
    assert holder.rejected == 1


def test_a_directory_swapped_by_symlink_is_followed(tmp_path: Path, clock: Clock) -> None:
    # How a Kubernetes ConfigMap (or a deploy script) replaces a directory at once.
    old, new = tmp_path / "v1", tmp_path / "v2"
    save_model(make_trained(), old)
    new_version = replace_with_trained(new, bias=-2.5)
    link = tmp_path / "live"
    link.symlink_to(old)
    holder = holder_of(link, clock)
    staged = tmp_path / "live.next"
    staged.symlink_to(new)
    os.replace(staged, link)
    assert look_twice(holder, clock).model_version == new_version


def test_the_same_model_written_again_is_no_reload(model_dir: Path, clock: Clock) -> None:
    heard: list[tuple[str, str]] = []
    holder = holder_of(model_dir, clock, heard)
    first = holder.current()
    replace_with_trained(model_dir)  # the same bytes, new files
    assert look_twice(holder, clock) is first
    assert (holder.reloaded, holder.rejected) == (0, 0)
    assert [outcome for outcome, _ in heard] == ["loaded"]


def test_zero_seconds_never_looks(model_dir: Path, clock: Clock) -> None:
    holder = holder_of(model_dir, clock, check=0)
    first = holder.current()
    replace_with_trained(model_dir, bias=-1.0)
    for _ in range(3):
        clock.now += 3_600
        assert holder.current() is first


def test_the_first_model_must_be_good(model_dir: Path, clock: Clock) -> None:
    (model_dir / MODEL_FILE).write_bytes(b"not a model")
    with pytest.raises(ModelFileError):
        holder_of(model_dir, clock)


def test_a_worker_finding_another_checking_goes_on_with_the_live_model(
    model_dir: Path, clock: Clock
) -> None:
    holder = holder_of(model_dir, clock)
    first = holder.current()
    replace_with_trained(model_dir, bias=-1.0)
    clock.now += CHECK
    holder._lock.acquire()  # another worker is checking
    try:
        assert holder.current() is first
    finally:
        holder._lock.release()
    holder.current()
    clock.now += SETTLE
    assert holder.current() is not first


def test_live_model_of_a_fixed_model_is_itself(model_dir: Path, clock: Clock) -> None:
    model = load_model(model_dir, VERSION, NAMES)
    assert live_model(model) is model
    holder = holder_of(model_dir, clock)
    assert live_model(holder) is holder.current()


def test_scores_carry_the_version_of_the_model_that_made_them(
    model_dir: Path, clock: Clock
) -> None:
    # Score ids derive from the model version: from a reload on, a score of the same
    # account at the same time has another id (the README says so).
    holder = holder_of(model_dir, clock)
    request = ScoreRequest("acme", "acct-1", (1.0, 3.0, 12.0, 0.5), 1_790_000_000.0, 0.0, "e1")
    before = score_batch([request], live_model(holder), RiskPolicy())[0]
    replace_with_trained(model_dir, bias=-1.0)
    after = score_batch([request], look_twice(holder, clock), RiskPolicy())[0]
    assert before.model_version != after.model_version
    assert before.score_id != after.score_id

