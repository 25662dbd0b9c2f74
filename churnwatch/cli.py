"""The ``churnwatch`` command line."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnwatch import native
from churnwatch.errors import ChurnwatchError
from churnwatch.logs import configure_logging
from churnwatch.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from churnwatch.progress import Progress
    from dataflows.metrics import PipelineMetrics
    from decisions.policy import Vocabulary


def _settings() -> Settings:
    return Settings.from_env(os.environ)


def cmd_run(args: argparse.Namespace) -> int:
    from churnwatch.app import run_pipeline

    settings = _settings()
    missing = [
        name
        for name, value in (
            ("CHURNWATCH_KAFKA_BOOTSTRAP", settings.kafka_bootstrap),
            ("CHURNWATCH_DATABASE_URL", settings.database_url),
        )
        if not value
    ]
    if missing:
        print(
            f"churnwatch run: set {', '.join(missing)} (or use 'churnwatch demo')", file=sys.stderr
        )
        return 2
    if args.processes > 1:
        from churnwatch.cluster import run_local_cluster

        return run_local_cluster(
            args.processes,
            args.workers_per_process,
            until_drained=args.until_drained,
            recovery_dir=settings.recovery_dir,
            recovery_partitions=settings.recovery_partitions,
            shards=settings.shards,
        )
    addresses = args.addresses.split(";") if args.addresses else None
    if addresses and args.process_id is None:
        print("churnwatch run: --addresses needs --process-id", file=sys.stderr)
        return 2
    metrics = run_pipeline(
        settings,
        tail=not args.until_drained,
        workers_per_process=args.workers_per_process,
        process_id=args.process_id,
        addresses=addresses,
    )
    if args.until_drained:
        print("drained: " + " ".join(f"{k}={v}" for k, v in metrics.summary().items()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from churnwatch.demo import run_demo

    return run_demo(_settings(), accounts=args.accounts, days=args.days, seed=args.seed,
                    serve_port=args.port if args.serve else None, serve_host=args.host,
                    product=args.product)


def cmd_migrate(args: argparse.Namespace) -> int:
    from sinks.migrate import migrate
    from sinks.postgres import connect

    settings = _settings()
    if not settings.database_url:
        print("churnwatch db migrate: set CHURNWATCH_DATABASE_URL", file=sys.stderr)
        return 2
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        applied = migrate(conn, settings.database_schema)
    print(f"schema {settings.database_schema}: applied {applied or 'nothing (up to date)'}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    import psycopg

    from sinks.errors import DatabaseUnavailable
    from sinks.postgres import connect
    from sinks.retention import KEPT_TABLES, prune

    settings = _settings()
    if not settings.database_url:
        print("churnwatch db prune: set CHURNWATCH_DATABASE_URL", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    try:
        with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
            results = prune(conn, settings.retention.tables(), now=now,
                            batch_rows=args.batch_size, dry_run=args.dry_run)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    verb = "would delete" if args.dry_run else "deleted"
    print(f"schema {settings.database_schema}: rows older than their retention (event time and "
          f"inserted_at) as of {now:%Y-%m-%dT%H:%M:%SZ}" + (" (dry run)" if args.dry_run else ""))
    for result in results:
        if result.retain is None:
            print(f"  {result.table:<22} kept (retention off)")
            continue
        days = result.retain.total_seconds() / 86_400
        batches = "" if args.dry_run else f" in {result.batches} batch(es)"
        print(f"  {result.table:<22} {days:g} days: {verb} {result.rows} row(s){batches}")
    for table, why in KEPT_TABLES.items():
        if table != "schema_migrations":
            print(f"  {table:<22} never pruned: {why.split(';')[0]}")
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from datetime import timedelta

    import orjson

    from churnwatch.erase import erase
    from schemas.erasure import id_problem, new_erasure
    from sinks.erasure import requester

    problem = id_problem(args.tenant, args.account, args.user)
    if problem is not None:
        print(f"churnwatch erase: {problem}", file=sys.stderr)
        return 2
    erasure = new_erasure(args.tenant, args.account, args.user)
    document = erase(
        _settings(), erasure, args.by or requester(),
        wait=timedelta(seconds=args.wait) if args.wait else None,
    )
    print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    if args.wait and document.get("stream_erased_at") is None:
        print(f"churnwatch erase: the dataflow did not confirm within {args.wait} s; it "
              "will when it reads the erasure (see the receipt)", file=sys.stderr)
        return 1
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"must be positive, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def cmd_simulate(args: argparse.Namespace) -> int:
    from churnwatch.progress import Progress
    from churnwatch.simulator import (
        SIMULATION_START,
        Simulation,
        produce,
        simulate,
        write_jsonl,
        write_truth,
    )
    from churnwatch.simulator_social import simulate_social

    simulation: Simulation
    if not (args.out or args.kafka):  # said before minutes of simulating, not after
        print("churnwatch simulate: give --out FILE and/or --kafka", file=sys.stderr)
        return 2
    if args.product == "social" and args.mean_lifetime_days is not None:
        print("churnwatch simulate: --mean-lifetime-days is for --product saas", file=sys.stderr)
        return 2
    settings = _settings() if args.kafka else None
    if settings is not None and not settings.kafka_bootstrap:
        print("churnwatch simulate --kafka: set CHURNWATCH_KAFKA_BOOTSTRAP", file=sys.stderr)
        return 2
    start = SIMULATION_START if args.start is None else datetime.combine(args.start, time(), UTC)
    past_now = start + timedelta(days=args.days) - datetime.now(UTC)
    if past_now > timedelta(hours=1):  # said before minutes of simulating
        print(f"churnwatch simulate: warning: the history ends {past_now.days + 1} day(s) past"
              " now, and churnwatch dead-letters events from the future (future_time) as it"
              " reads them: to use all of it, give --start at least that much earlier",
              file=sys.stderr)
    with Progress("simulate") as progress:
        progress.stage(f"simulating {args.product}")
        if args.product == "social":
            simulation = simulate_social(accounts=args.accounts or 300, days=args.days,
                                         seed=args.seed, start=start)
        else:
            simulation = simulate(accounts=args.accounts or 200, days=args.days,
                                  seed=args.seed, mean_lifetime_days=args.mean_lifetime_days,
                                  traits=args.traits, start=start)
        if args.truth:
            write_truth(simulation, Path(args.truth))
        if args.out:
            progress.stage(f"writing {args.out}")
            lines = write_jsonl(simulation, Path(args.out))
            progress.advance(lines)
        if settings is not None and settings.kafka_bootstrap:
            progress.stage(f"producing to {settings.topics.events}")
            count = produce(simulation, settings.kafka_bootstrap, settings.topics.events,
                            config=settings.kafka_config.properties)
            progress.advance(count)
    if args.out:
        print(f"wrote {lines} messages to {args.out}")
    if settings is not None:
        print(f"produced {count} messages to {settings.topics.events}")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    import orjson

    from accounts.backfill import backfill
    from churnwatch.progress import Progress
    from churnwatch.wiring import account_config, event_limits
    from featurestore.definitions import load_definitions

    settings = _settings()
    definitions = Path(args.definitions) if args.definitions else settings.feature_definitions
    feature_set = load_definitions(definitions)
    with Progress("features backfill", Path(args.file)) as progress:
        progress.stage("reading events")
        result = backfill(
            progress.read_jsonl(Path(args.file)),
            account_config(settings, feature_set),
            event_limits(settings),
        )
    out = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    try:
        for row in sorted(result.rows.values(), key=lambda r: (r.tenant_id, r.account_id)):
            out.write(orjson.dumps(row.to_document()) + b"\n")
    finally:
        if args.out:
            out.close()
    counts = ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items()))
    print(f"{len(result.rows)} accounts, feature_version {feature_set.version}; {counts}; "
          f"{len(result.signals)} usage signals", file=sys.stderr)
    return 0


def cmd_features_check(args: argparse.Namespace) -> int:
    """The definitions file, its signals, tier-1 rules and lifecycle mapping, and the
    policy's references to them: every problem with its file and line."""
    from churnwatch.wiring import detector_rules, policy_vocabulary
    from decisions.policy import PolicyError, load_policy
    from featurestore.definitions import load_definitions

    settings = _settings()
    feature_set = load_definitions(Path(args.file))
    rules = detector_rules(settings, feature_set)
    lifecycle = sum(len(types) for types in feature_set.lifecycle.values())
    print(f"{args.file}: {len(feature_set.features)} features, "
          f"{len(rules.usage.names())} signals ({', '.join(rules.usage.names()) or 'none'}), "
          f"{len(rules.tier1)} tier-1 rules, {lifecycle} lifecycle event types; "
          f"feature_version {feature_set.version}")
    policy_file = settings.policy_file if args.policy is None else (
        None if args.policy == "off" else Path(args.policy)
    )
    if policy_file is None:
        return 0
    try:
        load_policy(policy_file, policy_vocabulary(settings, feature_set))
    except PolicyError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s) against {args.file}",
              file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{policy_file}: every trigger and feature it names is defined")
    return 0


def cmd_events_check(args: argparse.Namespace) -> int:
    from churnwatch.events_check import check_file, print_report
    from churnwatch.wiring import event_limits
    from schemas.formats import InputFormat

    settings = _settings()
    input_format = InputFormat(args.format) if args.format else settings.input_format
    mapping = Path(args.mapping) if args.mapping else settings.input_mapping
    report = check_file(Path(args.file), input_format, mapping, event_limits(settings))
    header = {"format": str(input_format)}
    if input_format is not InputFormat.NATIVE:
        header["mapping"] = str(mapping or "the shipped default")
    print_report(report, args.file, header=header)
    return 1 if report.refused else 0


def cmd_train(args: argparse.Namespace) -> int:
    from churnwatch.progress import Progress
    from churnwatch.wiring import account_config, event_limits
    from featurestore.definitions import load_definitions
    from scoring.model import read_metadata
    from training.history import ModelFamily, train_from_history
    from training.tiers import TierOptions
    from training.transforms import parse_clip

    settings = _settings()
    definitions = Path(args.definitions) if args.definitions else settings.feature_definitions
    tiers = TierOptions(
        high_share=args.high_share, medium_share=args.medium_share,
        high_precision=args.high_precision, fixed=args.fixed_tiers,
    )
    history = Path(args.history)
    with Progress("train", history) as progress:
        trained = train_from_history(
            history,
            Path(args.out),
            config=account_config(settings, load_definitions(definitions)),
            limits=event_limits(settings),
            horizon_days=args.horizon_days,
            seed=args.seed,
            family=ModelFamily(args.model),
            log1p=[n for part in args.log1p for n in part.split(",") if n],
            clip=[parse_clip(text) for text in args.clip],
            tiers=tiers,
            messages=progress.read_jsonl,
            stage=progress.stage,
        )
    metrics = trained.metrics
    print(f"{args.model} model written to {args.out} (feature_version "
          f"{trained.feature_version})")
    thresholds = read_metadata(Path(args.out)).tiers
    if thresholds is not None:
        print(f"tiers ({thresholds.method}): medium >= {thresholds.medium_at:.4g} "
              f"({thresholds.medium_share:.1%} of {thresholds.rows} account-days), high >= "
              f"{thresholds.high_at:.4g} ({thresholds.high_share:.1%})")
    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    print(f"holdout ({metrics.accounts} accounts, {metrics.rows} rows, {metrics.positives} "
          f"positive): roc_auc={show(metrics.roc_auc)} "
          f"average_precision={show(metrics.average_precision)} "
          f"top_decile_lift={show(metrics.top_decile_lift)}")
    return 0


def _days(text: str) -> int:
    """``7d`` or ``7``: a positive number of days."""
    value = _positive_int(text.removesuffix("d"))
    return value


def cmd_evaluate(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    import numpy as np
    import orjson

    from churnwatch.progress import Progress
    from churnwatch.wiring import account_config, event_limits, risk_policy
    from featurestore.definitions import load_definitions
    from scoring.model import load_model
    from training.backtest import (
        BacktestReport,
        baseline_features,
        cross_fitted_baseline,
        date_of,
        fitted_baseline,
        grade,
        observation_rows,
    )
    from training.history import describe_history

    settings = _settings()
    if args.definitions:
        settings = settings.replace(feature_definitions=Path(args.definitions))
    feature_set = load_definitions(settings.feature_definitions)
    model_dir = Path(args.model) if args.model else settings.model_dir
    if model_dir is None:
        print("churnwatch evaluate: give --model DIR", file=sys.stderr)
        return 2
    model = load_model(model_dir, feature_set.version, feature_set.names)
    start = None
    if args.from_date:
        start = datetime.fromisoformat(args.from_date)
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    events = Path(args.events)
    now = datetime.now(UTC)
    limits = event_limits(settings)
    with Progress("evaluate", events) as progress:
        progress.stage("replaying the history")
        rows, cancellations = observation_rows(
            progress.read_jsonl(events), account_config(settings, feature_set), limits,
            horizon_days=args.horizon_days, every_days=args.every, start=start, now=now,
            source=describe_history(events),
        )
        if rows.rows == 0:
            print(f"churnwatch evaluate: no labelled observation in {events} (history "
                  f"shorter than the {args.horizon_days}-day horizon?)", file=sys.stderr)
            return 1
        progress.stage("scoring")
        risks, _ = model.score(rows.X)
        high_at = risk_policy(settings).for_model(model).high_at
        results = [grade(f"model {model.model_version}", rows, risks, cancellations, high_at)]
        if args.baseline or args.baseline_history:
            progress.stage("fitting the baseline")
            design, types = baseline_features(rows, progress.read_jsonl(events), limits, now)
            # The baseline's high tier: the same share of rows as the model's high tier.
            share = float((risks >= high_at).mean())

            def cut(scores: np.ndarray) -> float:
                return float(np.quantile(scores, 1.0 - share)) if share > 0 else np.inf

            if args.baseline:
                baseline = cross_fitted_baseline(rows, design)
                results.append(grade("baseline", rows, baseline, cancellations, cut(baseline)))
            if args.baseline_history:
                other = Path(args.baseline_history)
                progress.stage(f"fitting the baseline on {other.name}")
                train_rows, _ = observation_rows(
                    progress.read_jsonl(other), account_config(settings, feature_set), limits,
                    horizon_days=args.horizon_days, every_days=1, now=now,
                )
                train_design, _ = baseline_features(
                    train_rows, progress.read_jsonl(other), limits, now, types[:-1]
                )
                baseline = fitted_baseline(train_rows, train_design, design)
                results.append(grade(f"baseline ({other.name})", rows, baseline, cancellations,
                                     cut(baseline)))
    report = BacktestReport(
        source=rows.source, horizon_days=args.horizon_days, every_days=args.every,
        first_date=date_of(float(rows.observed_at.min())),
        last_date=date_of(float(rows.observed_at.max())),
        results=tuple(results), counts=dict(rows.counts),
    )
    if args.format == "json":
        print(orjson.dumps(report.to_document(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_backtest(report))
    return 0


def format_backtest(report: Any) -> str:
    """The backtest as a side-by-side table."""
    def show(value: float | None, spec: str = ".3f") -> str:
        return "n/a" if value is None else format(value, spec)

    first = report.first_date.date() if report.first_date else "?"
    last = report.last_date.date() if report.last_date else "?"
    lines = [f"evaluate {report.source}: observations every {report.every_days} days "
             f"{first} .. {last}, horizon {report.horizon_days} days"]
    names = [r.name for r in report.results]
    rows = [
        ("rows (account-dates)", [str(r.metrics.rows) for r in report.results]),
        ("accounts", [str(r.metrics.accounts) for r in report.results]),
        ("base rate", [show(r.metrics.base_rate, ".4f") for r in report.results]),
        ("ROC AUC", [show(r.metrics.roc_auc) for r in report.results]),
        ("average precision", [show(r.metrics.average_precision) for r in report.results]),
        ("top-decile lift", [show(r.metrics.top_decile_lift, ".2f") for r in report.results]),
        ("high tier at", [show(r.high_tier.high_at, ".4g") for r in report.results]),
        ("high-tier alerts", [str(r.high_tier.alerts) for r in report.results]),
        ("alert precision", [show(r.high_tier.precision) for r in report.results]),
        ("recall (accounts)", [f"{show(r.high_tier.recall)} ({r.high_tier.caught_accounts}/"
                               f"{r.high_tier.churned_accounts})" for r in report.results]),
        ("median lead (days)", [show(r.high_tier.median_lead_days, ".1f")
                                for r in report.results]),
    ]
    width = max(len(label) for label, _ in rows) + 2
    columns = [max(len(n), *(len(v[i]) for _, v in rows)) + 2 for i, n in enumerate(names)]
    lines.append(" " * width + "".join(n.rjust(c) for n, c in zip(names, columns, strict=True)))
    for label, values in rows:
        lines.append(label.ljust(width)
                     + "".join(v.rjust(c) for v, c in zip(values, columns, strict=True)))
    return "\n".join(lines)


def _watch(progress: Progress) -> Callable[[PipelineMetrics], None]:
    """Hands a replay's metrics to ``progress``, which polls the messages read."""
    return lambda metrics: progress.watch(lambda: int(metrics.total(metrics.messages)))


def cmd_replay(args: argparse.Namespace) -> int:
    from churnwatch.progress import Progress
    from churnwatch.replay import replay

    settings = _settings()
    if args.definitions:
        settings = settings.replace(feature_definitions=Path(args.definitions))
    if args.model:
        settings = settings.replace(model_dir=None if args.model == "off" else Path(args.model))
    if args.policy:
        settings = settings.replace(
            policy_file=None if args.policy == "off" else Path(args.policy))
    if args.to_sinks and args.processes > 1:
        print("churnwatch replay: --processes is for a replay into files (--out)",
              file=sys.stderr)
        return 2
    if args.to_sinks:
        from churnwatch.replay import replay_to_sinks

        if not (settings.kafka_bootstrap and settings.redis_url and settings.database_url):
            print("churnwatch replay --to-sinks: set CHURNWATCH_KAFKA_BOOTSTRAP, "
                  "CHURNWATCH_REDIS_URL and CHURNWATCH_DATABASE_URL", file=sys.stderr)
            return 2
        with Progress("replay", Path(args.events)) as progress:
            progress.stage("replaying into the sinks")
            summary = replay_to_sinks(Path(args.events), settings, watch=_watch(progress))
        print("replayed into the configured sinks: "
              + " ".join(f"{k}={v}" for k, v in summary.items()))
        return 0
    if not args.out:
        print("churnwatch replay: give --out DIR (or --to-sinks)", file=sys.stderr)
        return 2
    if args.processes > 1:
        return _replay_processes(args, settings)
    from dataflows.run import tune_process

    tune_process()  # as a run does: fewer collections, large buffers mapped apart
    with Progress("replay", Path(args.events)) as progress:
        progress.stage("replaying")
        counts = replay(Path(args.events), Path(args.out), settings, watch=_watch(progress))
    print(f"replayed {args.events} into {args.out}: "
          + ", ".join(f"{name}.jsonl {count}" for name, count in counts.items()))
    return 0


def _replay_processes(args: argparse.Namespace, settings: Settings) -> int:
    """``replay --processes N``: N children in a Bytewax cluster (each runs its share,
    see :func:`churnwatch.replay.replay_process`), then their outputs merged."""
    from churnwatch.cluster import DRAINED, local_addresses, run_children
    from churnwatch.progress import Progress
    from churnwatch.replay import clear_outputs, merge_outputs, replay_process
    from dataflows.run import tune_process

    out, events = Path(args.out), Path(args.events)
    if args.process_id is not None:  # a child
        tune_process()
        counts = replay_process(events, out, settings, processes=args.processes,
                                process_id=args.process_id, addresses=args.addresses.split(";"))
        print(DRAINED + " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    clear_outputs(out)
    addresses = local_addresses(args.processes)
    passed = [flag for name in ("definitions", "model", "policy")
              if getattr(args, name) for flag in (f"--{name}", getattr(args, name))]
    argvs = [[sys.executable, "-m", "churnwatch", "replay", "--events", str(events),
              "--out", str(out), *passed, "--processes", str(args.processes),
              "--process-id", str(i), "--addresses", addresses]
             for i in range(args.processes)]
    with Progress("replay", events) as progress:
        progress.stage(f"replaying with {args.processes} processes")
        failed, totals = run_children(argvs)
        if failed:
            print(f"churnwatch replay: a process failed (exit {failed})", file=sys.stderr)
            return failed
        progress.advance(totals["messages"])
        progress.stage("merging the outputs")
        counts = merge_outputs(out)
    print(f"replayed {args.events} into {args.out} with {args.processes} processes: "
          + ", ".join(f"{name}.jsonl {count}" for name, count in counts.items()))
    return 0


def _policy_vocabulary(settings: Settings, definitions: str | None) -> Vocabulary:
    from churnwatch.wiring import policy_vocabulary
    from featurestore.definitions import load_definitions

    path = Path(definitions) if definitions else settings.feature_definitions
    return policy_vocabulary(settings, load_definitions(path))


def cmd_policy_check(args: argparse.Namespace) -> int:
    from decisions.policy import PolicyError, load_policy

    settings = _settings()
    vocabulary = _policy_vocabulary(settings, args.definitions)
    try:
        policy = load_policy(Path(args.file), vocabulary)
    except PolicyError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    experiments = ", ".join(
        f"{e.key} on {e.workflow_key} (holdout {e.holdout_percent}%)"
        for e in policy.experiments.values()
    )
    print(f"{args.file}: policy_version {policy.version}: {len(policy.rules)} rules, "
          f"{len(policy.workflows)} workflows, caps on {', '.join(policy.caps) or 'nothing'}; "
          f"experiments: {experiments or 'none'}")
    return 0


def cmd_policy_dry_run(args: argparse.Namespace) -> int:
    import tempfile

    import orjson

    from churnwatch.progress import Progress
    from churnwatch.replay import replay
    from decisions.dry_run import compare, format_report

    settings = _settings()
    if settings.model_dir is None:
        print("churnwatch policy dry-run: decisions build on scores; set a model "
              "(CHURNWATCH_MODEL_DIR is 'off')", file=sys.stderr)
        return 2
    current = Path(args.current) if args.current else settings.policy_file
    if current is None:
        print("churnwatch policy dry-run: give --current FILE (CHURNWATCH_POLICY is 'off')",
              file=sys.stderr)
        return 2
    runs = []
    with (tempfile.TemporaryDirectory(prefix="churnwatch-dry-run-") as tmp,
          Progress("policy dry-run", Path(args.events)) as progress):
        for name, policy_file in (("current", current), ("new", Path(args.policy))):
            out = Path(tmp) / name
            progress.stage(f"replaying under the {name} policy")
            replay(Path(args.events), out, settings.replace(policy_file=policy_file),
                   watch=_watch(progress) if name == "current" else None)
            lines = (out / "decisions.jsonl").read_bytes().splitlines()
            runs.append([orjson.loads(line) for line in lines if line])
    report = compare(runs[0], runs[1])
    print(f"dry run over {args.events}: current {current}, new {args.policy}")
    print(format_report(report, limit=args.limit))
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from churnwatch.api_server import serve

    serve(_settings(), args.host, args.port)
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from api import add_user, disable_user, list_users
    from churnwatch.api_server import migrate_schema
    from schemas.event import format_time
    from sinks.postgres import connect

    settings = _settings()
    if not settings.database_url:
        print("churnwatch users: set CHURNWATCH_DATABASE_URL", file=sys.stderr)
        return 2
    migrate_schema(settings)
    # As churnwatch's own role (the tables' owner): users of every tenant.
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        if args.users_command == "add":
            user, token = add_user(conn, args.tenant, args.name, args.role)
            print(f"user {user.name} ({user.role}, tenant {user.tenant_id}) added; its token,"
                  " shown this once (only its SHA-256 is stored):", file=sys.stderr)
            print(token)
        elif args.users_command == "list":
            for user in list_users(conn, args.tenant):
                state = f"disabled {format_time(user.disabled_at)}" if user.disabled_at \
                    else "enabled"
                print(f"{user.tenant_id}\t{user.name}\t{user.role}\t{state}")
        else:
            user = disable_user(conn, args.name, args.tenant)
            print(f"user {user.name} (tenant {user.tenant_id}) disabled: its token no longer"
                  " works")
    return 0


def _instant(text: str) -> datetime:
    """An RFC 3339 time with an offset, for --since / --until."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone offset (e.g. Z): {text!r}")
    return moment.astimezone(UTC)


def cmd_experiment_report(args: argparse.Namespace) -> int:
    import orjson
    import psycopg

    from api.winback import experiment_counts, experiment_known
    from decisions.experiment_report import build_report, format_text
    from sinks.postgres import connect

    settings = _settings()
    if not settings.database_url:
        print("churnwatch experiment report: set CHURNWATCH_DATABASE_URL", file=sys.stderr)
        return 2
    until = args.until or datetime.now(UTC)
    if args.since is not None and args.since >= until:
        print("churnwatch experiment report: --since must be before --until", file=sys.stderr)
        return 2
    # As churnwatch's own role (the tables' owner): every tenant unless --tenant names one.
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        try:
            if not experiment_known(conn, args.key, args.tenant):
                scope = f" in tenant {args.tenant}" if args.tenant else ""
                print(f"churnwatch experiment report: no account was assigned to experiment"
                      f" {args.key}{scope}", file=sys.stderr)
                return 1
            counts = experiment_counts(conn, args.key, since=args.since, until=until,
                                       tenant_id=args.tenant)
        except psycopg.errors.UndefinedTable as exc:
            print(f"churnwatch experiment report: {exc.diag.message_primary}: the schema is"
                  " older than this program (churnwatch db migrate)", file=sys.stderr)
            return 1
    report = build_report(args.key, counts, since=args.since, until=until,
                          tenant_id=args.tenant, control=args.control)
    if args.format == "json":
        print(orjson.dumps(report.to_document(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_text(report))
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    from churnwatch.localstack import LocalStack

    settings = _settings()
    with LocalStack(settings, settings.state_dir / "stack") as running:
        print(f"export CHURNWATCH_KAFKA_BOOTSTRAP={running.kafka_bootstrap}")
        if settings.kafka_bootstrap is None:  # the embedded broker: a single replica
            print("export CHURNWATCH_TOPIC_REPLICATION_FACTOR=1")
            print("export CHURNWATCH_TOPIC_MIN_INSYNC_REPLICAS=1")
        print(f"export CHURNWATCH_REDIS_URL={running.redis_url}")
        print(f"export CHURNWATCH_DATABASE_URL={running.database_url}")
        print("# local stack running; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="churnwatch", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the dataflow against the configured servers")
    run.add_argument(
        "--until-drained",
        action="store_true",
        help="stop at the end of the events topic instead of tailing it",
    )
    run.add_argument("--processes", "-p", type=int, default=1,
                     help="start this many local processes as one Bytewax cluster")
    run.add_argument("--workers-per-process", "-w", type=int, default=1,
                     help="worker threads per process (processes scale better: GIL)")
    run.add_argument(
        "--process-id",
        type=int,
        default=None,
        help="this process's index in a cluster (with --addresses)",
    )
    run.add_argument(
        "--addresses", default=None, help="';'-separated host:port of every process in the cluster"
    )
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="run the whole pipeline on the embedded local stack")
    demo.add_argument("--accounts", type=int, default=None,
                      help="accounts simulated (saas: 300; social: 1000 subscribers)")
    demo.add_argument("--days", type=int, default=None,
                      help="days simulated (saas: 30; social: 45)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--product", choices=["saas", "social"], default="saas",
                      help="the simulated product: saas (the default) or social (a consumer "
                           "app, with examples/social's definitions, policy and model)")
    demo.add_argument("--serve", action="store_true",
                      help="then keep the stack up and serve the API and console until Ctrl-C")
    demo.add_argument("--host", default="127.0.0.1", help="with --serve: address (127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="with --serve: port (8000)")
    demo.set_defaults(func=cmd_demo)

    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("migrate", help="apply pending schema migrations").set_defaults(
        func=cmd_migrate
    )
    prune = db_sub.add_parser(
        "prune", help="delete rows older than their table's retention (CHURNWATCH_RETAIN_*)"
    )
    prune.add_argument("--dry-run", action="store_true",
                       help="count the rows that would be deleted; delete nothing")
    prune.add_argument("--batch-size", type=_positive_int, default=5_000,
                       help="rows deleted per transaction at most (5000)")
    prune.set_defaults(func=cmd_prune)

    sim = sub.add_parser("simulate", help="generate a seeded event stream of a simulated product")
    sim.add_argument("--product", choices=["saas", "social"], default="saas",
                     help="saas: a B2B SaaS (the default); social: a consumer social app "
                          "with a monthly subscription (examples/social)")
    sim.add_argument("--accounts", type=int, default=None,
                     help="accounts (saas: 200) or subscribers (social: 300)")
    sim.add_argument("--days", type=int, default=30)
    sim.add_argument("--start", type=date.fromisoformat, default=None,
                     help="first day, YYYY-MM-DD (UTC; 2026-09-01): a history must end "
                          "before now, as events from the future are dead-lettered")
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--traits", action="store_true",
                     help="saas: each account's company, plan, MRR and renewal date as "
                          "account.traits_changed events (the accounts table's)")
    sim.add_argument("--mean-lifetime-days", type=float, default=None,
                     help="accounts sign up over the period and go silent after an "
                          "exponential lifetime of this mean (default: all there throughout)")
    sim.add_argument("--out", help="write the messages as JSONL to this file")
    sim.add_argument("--truth", help="write the ground truth (who churns, when) as JSON")
    sim.add_argument("--kafka", action="store_true", help="produce to the events topic")
    sim.set_defaults(func=cmd_simulate)

    events = sub.add_parser("events", help="input events: try a sample before connecting")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    echeck = events_sub.add_parser(
        "check",
        help="map and validate a JSONL sample as the dataflow would; exit 1 if any is refused",
    )
    echeck.add_argument("file", help="one message per line (or a Kafka record: "
                        '{"headers": {...}, "value": ...})')
    echeck.add_argument("--format", choices=["native", "segment", "cloudevents", "auto"],
                        help="the input format (default: CHURNWATCH_INPUT_FORMAT)")
    echeck.add_argument("--mapping", help="the mapping file (default: CHURNWATCH_INPUT_MAPPING,"
                        " else the shipped one)")
    echeck.set_defaults(func=cmd_events_check)

    features = sub.add_parser("features", help="feature definitions and batch features")
    features_sub = features.add_subparsers(dest="features_command", required=True)
    back = features_sub.add_parser(
        "backfill", help="features of every account in a JSONL history, as JSONL"
    )
    back.add_argument("file", help="JSONL of events v1 (e.g. from 'churnwatch simulate --out')")
    back.add_argument("--definitions", help="feature definitions file (default: settings)")
    back.add_argument("--out", help="write here instead of standard output")
    back.set_defaults(func=cmd_backfill)
    check = features_sub.add_parser(
        "check", help="validate a definitions file (features, signals, tier-1 rules, lifecycle)"
        " and the policy's references to it"
    )
    check.add_argument("file")
    check.add_argument("--policy", help="the policy whose triggers and features are checked"
                       " against the file (default: CHURNWATCH_POLICY; 'off': none)")
    check.set_defaults(func=cmd_features_check)

    train = sub.add_parser("train", help="train a churn model from a JSONL history")
    train.add_argument("--history", required=True, help="JSONL of events v1")
    train.add_argument("--out", required=True, help="directory for model.onnx and metadata.json")
    train.add_argument("--definitions", help="feature definitions file (default: settings)")
    train.add_argument("--horizon-days", type=int, default=28,
                       help="label: cancels within this many days of the observation")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--model", choices=["logistic", "trees"], default="logistic",
                       help="logistic regression, or gradient-boosted trees (logistic)")
    train.add_argument("--log1p", action="append", default=[], metavar="NAMES",
                       help="log1p these features (comma-separated; 'nonnegative': every "
                            "feature with no negative training value); in the ONNX graph")
    train.add_argument("--clip", action="append", default=[], metavar="NAME:LOW:HIGH",
                       help="clip a feature to [LOW, HIGH] before any log1p (repeatable)")
    train.add_argument("--high-share", type=float, default=0.05,
                       help="tiers: high = this top share of the training account-days (0.05)")
    train.add_argument("--medium-share", type=float, default=0.15,
                       help="tiers: medium = the next share below high (0.15)")
    train.add_argument("--high-precision", type=float, default=None, metavar="P",
                       help="tiers: high = the lowest risk whose alerts are at least P "
                            "precise on held-out accounts (instead of --high-share)")
    train.add_argument("--fixed-tiers", action="store_true",
                       help="store no tiers: the service uses CHURNWATCH_RISK_TIERS or 0.4,0.7")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser(
        "evaluate", help="backtest a model on a JSONL history: ranking, high-tier alerts, "
        "lead time; --baseline adds the textbook baseline side by side")
    ev.add_argument("--events", required=True, help="JSONL of events v1 (not the training one)")
    ev.add_argument("--model", help="model directory (default: settings)")
    ev.add_argument("--definitions", help="feature definitions file (default: settings)")
    ev.add_argument("--horizon-days", type=_positive_int, default=28,
                    help="label: cancels within this many days of the date (28)")
    ev.add_argument("--every", type=_days, default=7, metavar="Nd",
                    help="observation dates this many days apart (7d)")
    ev.add_argument("--from", dest="from_date", metavar="DATE",
                    help="first observation date (default: the history's 8th day)")
    ev.add_argument("--baseline", action="store_true",
                    help="also fit and grade the textbook baseline (logistic regression on "
                         "log1p 28-day event-type counts and tenure) on the same rows, "
                         "cross-fitted over the accounts of this history")
    ev.add_argument("--baseline-history", metavar="F",
                    help="also the baseline fitted on this other history (e.g. the model's "
                         "training one, every day of it): the model's own footing")
    ev.add_argument("--format", choices=["text", "json"], default="text")
    ev.set_defaults(func=cmd_evaluate)

    rep = sub.add_parser("replay", help="run the dataflow over a JSONL history (backtest)")
    rep.add_argument("--events", required=True, help="JSONL of events v1")
    rep.add_argument("--out", help="directory for the JSONL outputs")
    rep.add_argument("--to-sinks", action="store_true",
                     help="write to the configured Kafka, Redis and PostgreSQL instead")
    rep.add_argument("--definitions", help="feature definitions file (default: settings)")
    rep.add_argument("--model", help="model directory, or 'off' (default: settings)")
    rep.add_argument("--policy", help="decision policy file, or 'off' (default: settings)")
    rep.add_argument("--processes", type=_positive_int, default=1,
                     help="replay with this many processes, the file read as as many "
                          "partitions by account (same outputs for a history in event-time "
                          "order; 1)")
    rep.add_argument("--process-id", type=int, default=None, help=argparse.SUPPRESS)
    rep.add_argument("--addresses", default=None, help=argparse.SUPPRESS)
    rep.set_defaults(func=cmd_replay)

    policy = sub.add_parser("policy", help="decision policies: validate, try on a history")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    pcheck = policy_sub.add_parser(
        "check", help="validate a policy file: every problem with its line; non-zero if any"
    )
    pcheck.add_argument("file")
    pcheck.add_argument("--definitions", help="feature definitions file (default: settings)")
    pcheck.set_defaults(func=cmd_policy_check)
    dry = policy_sub.add_parser(
        "dry-run", help="replay a history under the current and a new policy; show what changes"
    )
    dry.add_argument("--policy", required=True, help="the new policy file")
    dry.add_argument("--events", required=True, help="JSONL of events v1")
    dry.add_argument("--current", help="the current policy (default: CHURNWATCH_POLICY)")
    dry.add_argument("--limit", type=int, default=50, help="accounts listed at most")
    dry.set_defaults(func=cmd_policy_dry_run)

    erase = sub.add_parser(
        "erase",
        help="erase an account (or one user of it) from PostgreSQL, Redis and the stream",
        description="Removes the subject's rows from every table (the contact ledger keeps "
        "a tombstone), its Redis hash, and its state in the dataflow (a control message on "
        "every partition of the events topic); prints the erasure receipt. Messages already "
        "published on churnwatch's topics stay until the topics' retention.",
    )
    erase.add_argument("--tenant", required=True)
    erase.add_argument("--account", required=True)
    erase.add_argument("--user", help="erase this user of the account only")
    erase.add_argument("--by", help="who asks, for the receipt (default: user@host)")
    erase.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS",
        help="wait this long for the running dataflow to confirm (exit 1 if it does not)",
    )
    erase.set_defaults(func=cmd_erase)

    experiment = sub.add_parser("experiment", help="decision experiments: their results")
    experiment_sub = experiment.add_subparsers(dest="experiment_command", required=True)
    ereport = experiment_sub.add_parser(
        "report",
        help="save and churn rates per arm, with 95%% confidence intervals",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Per arm (variant, holdout included) of experiment KEY, over the accounts\n"
            "assigned to it (experiment_assignments) in [--since, --until):\n"
            "  saved    the account's latest settled win-back entry of the experiment\n"
            "           (a trigger at or after its assignment) is saved: a workflow.saved\n"
            "           outcome, or else a 'recovered' workflow signal; before --until\n"
            "  lost     likewise lost: workflow.lost, or else a 'cancelled' signal\n"
            "  churned  a subscription.cancelled (cancellation_reasons) at or after the\n"
            "           account's assignment and before --until (default: now)\n"
            "Save rate = saved / assigned and churn rate = churned / assigned (every\n"
            "assigned account counts: the holdout compares fairly), each with its 95%\n"
            "Wilson score interval; 'vs control' = arm minus the control arm, with\n"
            "Newcombe's hybrid score interval."
        ),
    )
    ereport.add_argument("key", help="the experiment's key (the policy's experiments: ...)")
    ereport.add_argument("--since", type=_instant, help="assigned from (RFC 3339, inclusive)")
    ereport.add_argument("--until", type=_instant,
                         help="assigned, saved, lost and churned before (RFC 3339; now)")
    ereport.add_argument("--tenant", help="one tenant's accounts (default: every tenant)")
    ereport.add_argument("--control", default="holdout",
                         help="the arm the others are compared with (holdout)")
    ereport.add_argument("--format", choices=["text", "json"], default="text")
    ereport.set_defaults(func=cmd_experiment_report)

    stack = sub.add_parser("stack", help="start the embedded local stack until Ctrl-C")
    stack.set_defaults(func=cmd_stack)

    api = sub.add_parser("api", help="serve the REST API (docs at /docs) until Ctrl-C")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    api.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    api.set_defaults(func=cmd_api)

    users = sub.add_parser("users", help="the REST API's users and their tokens")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    uadd = users_sub.add_parser("add", help="add a user; prints its token once")
    uadd.add_argument("--tenant", required=True)
    uadd.add_argument("--role", required=True, choices=["admin", "coordinator", "agent"])
    uadd.add_argument("--name", required=True, help="how accounts name it as their owner")
    uadd.set_defaults(func=cmd_users)
    ulist = users_sub.add_parser("list", help="list users (tenant, name, role, state)")
    ulist.add_argument("--tenant")
    ulist.set_defaults(func=cmd_users)
    udisable = users_sub.add_parser("disable", help="disable a user: its token stops working")
    udisable.add_argument("name")
    udisable.add_argument("--tenant", help="needed when several tenants have the name")
    udisable.set_defaults(func=cmd_users)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = args.command in ("demo", "policy")  # they print their own story
    if outdated := native.stale():
        print(f"churnwatch: {native.STALE_ADVICE.format(modules=', '.join(outdated))}",
              file=sys.stderr)
        return 2
    try:
        settings = _settings()
    except ChurnwatchError as exc:
        print(f"churnwatch: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        "text" if quiet else settings.log_format,
        logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
    )
    try:
        return int(args.func(args))
    except ChurnwatchError as exc:
        print(f"churnwatch: {exc}", file=sys.stderr)
        # 1, or the error's own status (74: the recovery directory cannot be written)
        return int(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        # Ctrl-C / SIGINT is how a tailing service is stopped: no traceback.
        # State and offsets are as of the last snapshot; a restart resumes there.
        logging.getLogger("churnwatch").info("stopped by SIGINT")
        return 0
    except Exception as exc:
        if not interrupted(exc):
            raise
        # The signal landed in Python code the engine called (an input poll): Bytewax
        # wraps the KeyboardInterrupt in an error of its own. The same stop.
        logging.getLogger("churnwatch").info("stopped by SIGINT")
        return 0


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, a KeyboardInterrupt (SIGINT)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
