"""The per-event modules compiled to C with mypyc, and the check that they are current.

Where the data plane spends its time is per-event Python spread over many small
functions (README, Speed): the parse and validation of a message, the account
kernel (dedupe, day buckets, windows, detectors), the scoring and publication of a
due score. mypyc compiles these modules, unchanged, from their type annotations:
the same code, the same outputs (the test suite runs against the compiled
modules), about a fifth less CPU per event.

``make native`` (run by ``make test``, ``make demo`` and ``make bench``) builds the
extension modules beside their sources (``<module>.cpython-*.so``), where Python
imports them instead of the ``.py``; ``make pure`` removes them (for a profile
of the Python functions; ``py-spy record --native`` names the compiled ones,
``CPyDef_<module>___<Class>___<method>``). An extension older
than its source would run the old code: :func:`stale` names such modules, and the
CLI and the tests refuse to start while there is one.
"""

from __future__ import annotations

import contextlib
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The shared library of the compiled group, inside a package so that the editable
# install's finder locates it: churnwatch/native__mypyc.<suffix>.
GROUP = "churnwatch.native"
# Sources compiled, lowest layer first. Each must type-check under mypy; a class
# pickled by the dataflow (a snapshot, an item that crosses processes) stays a plain
# class, @mypyc_attr(native_class=False), or it cannot be unpickled (the snapshot
# round-trip tests fail); an argument's annotation must admit every value passed,
# older snapshots' shapes included (a compiled function checks it).
MODULES = (
    "schemas/clock.py",
    "schemas/event.py",
    "schemas/alert.py",
    "schemas/account.py",
    "schemas/score.py",
    "featurestore/aggregation.py",
    "detectors/inactivity.py",
    "detectors/lifecycle.py",
    "detectors/tier1.py",
    "detectors/usage.py",
    "accounts/debounce.py",
    "accounts/dedupe.py",
    "accounts/processor.py",
    "accounts/record.py",
    "scoring/reasons.py",
    "scoring/risk.py",
    "decisions/engine.py",
    "dataflows/state_codec.py",
    "dataflows/account_table.py",
    "dataflows/shard.py",
    "dataflows/parse.py",
    "dataflows/files.py",
)


# What the CLI and the tests say when :func:`stale` finds a module.
STALE_ADVICE = (
    "{modules}: changed since compiled, and Python would run the compiled copy; "
    "run `make native` to compile them again (or `make pure` to run the sources)"
)


def extension_of(source: Path) -> Path | None:
    """The compiled extension beside ``source``, if there is one."""
    for suffix in EXTENSION_SUFFIXES:
        candidate = source.with_suffix(suffix)
        if candidate.exists():
            return candidate
    return None


def library(root: Path = ROOT) -> Path | None:
    """The group's shared library, which holds the compiled code of every module (the
    extension beside each source only imports from it), if built."""
    return extension_of(root / (GROUP.replace(".", "/") + "__mypyc.py"))


def manifest(root: Path = ROOT) -> Path:
    """The modules the group's shared library was built from, one per line. The
    library holds each one's native classes, which the others' compiled code expects:
    a module dropped from :data:`MODULES` (its extension deleted by hand) would run as
    Python beside a library that still holds it, and fail ("detectors.usage.UsageRules
    object expected; got detectors.usage.UsageRules")."""
    return root / (GROUP.replace(".", "/") + "__mypyc.modules")


def _extensions(root: Path) -> list[tuple[Path, Path]]:
    """Every compiled extension in the packages of ``root`` that has a source beside
    it, with that source (listed in :data:`MODULES` or not)."""
    found = []
    for suffix in EXTENSION_SUFFIXES:
        for extension in root.glob(f"*/*{suffix}"):
            source = extension.with_name(extension.name.removesuffix(suffix) + ".py")
            if source.exists():
                found.append((extension, source))
    return found


def stale(root: Path = ROOT) -> list[str]:
    """The compiled modules whose source changed after they were built, and those
    compiled once but no longer in :data:`MODULES` (their extension would still win).
    Only in a source tree (``pyproject.toml`` beside the packages), where sources are
    edited: an installed copy's files all carry the install's times."""
    if not (root / "pyproject.toml").is_file():
        return []
    shared = library(root)
    built = shared.stat().st_mtime if shared is not None else -1.0
    found = []
    for name in MODULES:
        source = root / name
        if extension_of(source) is not None and built < source.stat().st_mtime:
            found.append(name)
    listed = {root / name for name in MODULES}
    found += [str(source.relative_to(root)) for _, source in _extensions(root)
              if source not in listed]
    if shared is not None:  # built from other modules than those listed now
        recorded = manifest(root)
        built_from = recorded.read_text().split() if recorded.is_file() else None
        if built_from is None:
            found.append(str(shared.relative_to(root)))  # from before the list was kept
        else:
            found += [name for name in built_from if name not in MODULES and name not in found]
    return found


def compiled(root: Path = ROOT) -> list[str]:
    """The modules of :data:`MODULES` that have an extension beside them."""
    return [name for name in MODULES if extension_of(root / name) is not None]


def build() -> None:
    """Compile :data:`MODULES` in place (a C compiler and mypy's mypyc are needed)."""
    from mypyc.build import mypycify  # the build needs mypy; the service does not
    from setuptools import setup

    with contextlib.chdir(ROOT):  # MODULES are paths from the root
        setup(
            name="churnwatch-native",
            ext_modules=mypycify(list(MODULES), group_name=GROUP, opt_level="3"),
            script_args=["build_ext", "--inplace"],
        )
    # Built from the sources as they are now, though setuptools copies an unchanged
    # library with its old time: mark it, so that stale() compares with this build.
    shared = library()
    if shared is not None:
        shared.touch()
        manifest().write_text("".join(f"{name}\n" for name in MODULES))


def remove(root: Path = ROOT) -> None:
    """Delete every compiled extension of a source in the tree (whether listed in
    :data:`MODULES` or not any more), the group's shared library included."""
    for extension, _ in _extensions(root):
        extension.unlink()
    shared = library(root)
    if shared is not None:
        shared.unlink()
    manifest(root).unlink(missing_ok=True)


def main(argv: list[str], root: Path = ROOT) -> int:
    """``--remove``: delete the extensions; ``--if-needed``: build unless every module
    is compiled and current (what ``make native`` runs), and if the build fails, say
    so and leave the sources to run; else build, failing if it fails."""
    if argv[1:] == ["--remove"]:
        remove(root)
        return 0
    if_needed = argv[1:] == ["--if-needed"]
    if if_needed and not stale(root) and compiled(root) == list(MODULES):
        return 0
    remove(root)  # those no longer listed too
    try:
        build()
    except (Exception, SystemExit) as exc:  # no compiler, no mypyc, a compile error
        remove(root)  # never half a build: the sources run as they are
        print(f"churnwatch.native: the per-event modules were not compiled ({exc!r}); "
              "the sources run instead, slower (README, Speed)", file=sys.stderr)
        return 0 if if_needed else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
