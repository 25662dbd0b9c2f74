"""The compiled modules' bookkeeping (churnwatch.native): an extension older than its
source, or of a source no longer listed, is found, so nothing runs old code."""

from __future__ import annotations

import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from churnwatch import native

SUFFIX = EXTENSION_SUFFIXES[0]


def tree(root: Path, *, built_at: float, sources_at: float, extra: str | None = None
         ) -> None:
    """A source tree with every listed module compiled at ``built_at``."""
    (root / "pyproject.toml").write_text("")
    for name in (*native.MODULES, *([extra] if extra else [])):
        source = root / name
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("")
        os.utime(source, (sources_at, sources_at))
        extension = source.with_suffix(SUFFIX)
        extension.write_bytes(b"")
        os.utime(extension, (built_at, built_at))
    library = root / (native.GROUP.replace(".", "/") + "__mypyc" + SUFFIX)
    library.parent.mkdir(parents=True, exist_ok=True)
    library.write_bytes(b"")
    os.utime(library, (built_at, built_at))
    native.manifest(root).write_text("\n".join((*native.MODULES, *([extra] if extra else []))))


def test_extensions_built_after_their_sources_are_current(tmp_path: Path) -> None:
    tree(tmp_path, built_at=2_000.0, sources_at=1_000.0)
    assert native.stale(tmp_path) == []
    assert native.compiled(tmp_path) == list(native.MODULES)


def test_a_source_changed_after_the_build_is_stale(tmp_path: Path) -> None:
    tree(tmp_path, built_at=2_000.0, sources_at=1_000.0)
    edited = tmp_path / native.MODULES[2]
    os.utime(edited, (3_000.0, 3_000.0))
    assert native.stale(tmp_path) == [native.MODULES[2]]


def test_the_shared_library_dates_the_build_not_the_module_s_own_extension(
    tmp_path: Path,
) -> None:
    # The extension beside a source only imports the shared library, which holds the
    # code: setuptools leaves an unchanged one with its old time.
    tree(tmp_path, built_at=1_000.0, sources_at=500.0)
    source = tmp_path / native.MODULES[0]
    os.utime(source, (1_500.0, 1_500.0))
    os.utime(source.with_suffix(SUFFIX), (2_000.0, 2_000.0))
    assert native.stale(tmp_path) == [native.MODULES[0]]


def test_an_extension_whose_source_is_no_longer_listed_is_stale(tmp_path: Path) -> None:
    tree(tmp_path, built_at=2_000.0, sources_at=1_000.0, extra="detectors/dropped.py")
    assert native.stale(tmp_path) == ["detectors/dropped.py"]
    native.remove(tmp_path)
    assert native.stale(tmp_path) == [] and native.compiled(tmp_path) == []
    assert not list(tmp_path.rglob(f"*{SUFFIX}"))


def test_a_module_dropped_from_the_list_stays_stale_until_the_library_is_rebuilt(
    tmp_path: Path,
) -> None:
    # Its extension deleted by hand: the shared library still holds its native classes.
    tree(tmp_path, built_at=2_000.0, sources_at=1_000.0, extra="detectors/dropped.py")
    (tmp_path / "detectors/dropped.py").with_suffix(SUFFIX).unlink()
    assert native.stale(tmp_path) == ["detectors/dropped.py"]
    native.remove(tmp_path)
    assert native.stale(tmp_path) == [] and not native.manifest(tmp_path).exists()


def test_a_library_built_before_its_modules_were_recorded_is_stale(tmp_path: Path) -> None:
    tree(tmp_path, built_at=2_000.0, sources_at=1_000.0)
    native.manifest(tmp_path).unlink()
    library = native.library(tmp_path)
    assert library is not None
    assert native.stale(tmp_path) == [str(library.relative_to(tmp_path))]


def test_a_failed_build_leaves_the_sources_to_run_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tree(tmp_path, built_at=1_000.0, sources_at=2_000.0)  # stale: make native builds

    def no_compiler() -> None:
        raise SystemExit("error: command 'gcc' failed: No such file or directory")

    monkeypatch.setattr(native, "build", no_compiler)
    assert native.main(["native", "--if-needed"], tmp_path) == 0  # make demo goes on
    assert native.compiled(tmp_path) == [] and native.stale(tmp_path) == []
    assert "were not compiled" in capsys.readouterr().err
    tree(tmp_path, built_at=1_000.0, sources_at=2_000.0)
    assert native.main(["native"], tmp_path) == 1  # asked for outright: a failure
    assert native.compiled(tmp_path) == []


def test_an_installed_copy_is_never_stale(tmp_path: Path) -> None:
    # No pyproject.toml: site-packages, where a wheel's files carry its install's times.
    tree(tmp_path, built_at=1_000.0, sources_at=2_000.0)
    (tmp_path / "pyproject.toml").unlink()
    assert native.stale(tmp_path) == []


def test_the_cli_refuses_to_run_stale_code(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from churnwatch import cli

    monkeypatch.setattr(native, "stale", lambda: ["featurestore/aggregation.py"])
    assert cli.main(["policy", "check", "no-such-policy.yaml"]) == 2
    err = capsys.readouterr().err
    assert "featurestore/aggregation.py: changed since compiled" in err
    assert "make native" in err
