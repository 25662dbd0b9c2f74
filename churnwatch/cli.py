"""The ``churnwatch`` command line."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from churnwatch.errors import ChurnwatchError
from churnwatch.logs import configure_logging
from churnwatch.settings import Settings

if TYPE_CHECKING:
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
                    serve_port=args.port if args.serve else None, serve_host=args.host)


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
    from churnwatch.simulator import produce, simulate, write_jsonl, write_truth

    simulation = simulate(accounts=args.accounts, days=args.days, seed=args.seed,
                          mean_lifetime_days=args.mean_lifetime_days)
    if args.truth:
        write_truth(simulation, Path(args.truth))
    if args.out:
        lines = write_jsonl(simulation, Path(args.out))
        print(f"wrote {lines} messages to {args.out}")
    if args.kafka:
        settings = _settings()
        if not settings.kafka_bootstrap:
            print("churnwatch simulate --kafka: set CHURNWATCH_KAFKA_BOOTSTRAP", file=sys.stderr)
            return 2
        count = produce(simulation, settings.kafka_bootstrap, settings.topics.events,
                        config=settings.kafka_config.properties)
        print(f"produced {count} messages to {settings.topics.events}")
    if not (args.out or args.kafka):
        print("churnwatch simulate: give --out FILE and/or --kafka", file=sys.stderr)
        return 2
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    import orjson

    from accounts.backfill import backfill, read_jsonl
    from churnwatch.wiring import account_config, event_limits
    from featurestore.definitions import load_definitions

    settings = _settings()
    definitions = Path(args.definitions) if args.definitions else settings.feature_definitions
    feature_set = load_definitions(definitions)
    result = backfill(
        read_jsonl(Path(args.file)),
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
    from featurestore.definitions import load_definitions

    feature_set = load_definitions(Path(args.file))
    print(f"{args.file}: {len(feature_set.features)} features, "
          f"feature_version {feature_set.version}")
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
    from churnwatch.wiring import account_config, event_limits
    from featurestore.definitions import load_definitions
    from training.history import train_from_history

    settings = _settings()
    definitions = Path(args.definitions) if args.definitions else settings.feature_definitions
    trained = train_from_history(
        Path(args.history),
        Path(args.out),
        config=account_config(settings, load_definitions(definitions)),
        limits=event_limits(settings),
        horizon_days=args.horizon_days,
        seed=args.seed,
    )
    metrics = trained.metrics
    print(f"model written to {args.out} (feature_version {trained.feature_version})")
    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    print(f"holdout ({metrics.accounts} accounts, {metrics.rows} rows, {metrics.positives} "
          f"positive): roc_auc={show(metrics.roc_auc)} "
          f"average_precision={show(metrics.average_precision)} "
          f"top_decile_lift={show(metrics.top_decile_lift)}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from churnwatch.replay import replay

    settings = _settings()
    if args.definitions:
        settings = settings.replace(feature_definitions=Path(args.definitions))
    if args.model:
        settings = settings.replace(model_dir=None if args.model == "off" else Path(args.model))
    if args.to_sinks:
        from churnwatch.replay import replay_to_sinks

        if not (settings.kafka_bootstrap and settings.redis_url and settings.database_url):
            print("churnwatch replay --to-sinks: set CHURNWATCH_KAFKA_BOOTSTRAP, "
                  "CHURNWATCH_REDIS_URL and CHURNWATCH_DATABASE_URL", file=sys.stderr)
            return 2
        summary = replay_to_sinks(Path(args.events), settings)
        print("replayed into the configured sinks: "
              + " ".join(f"{k}={v}" for k, v in summary.items()))
        return 0
    if not args.out:
        print("churnwatch replay: give --out DIR (or --to-sinks)", file=sys.stderr)
        return 2
    counts = replay(Path(args.events), Path(args.out), settings)
    print(f"replayed {args.events} into {args.out}: "
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
    with tempfile.TemporaryDirectory(prefix="churnwatch-dry-run-") as tmp:
        for name, policy_file in (("current", current), ("new", Path(args.policy))):
            out = Path(tmp) / name
            replay(Path(args.events), out, settings.replace(policy_file=policy_file))
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
    demo.add_argument("--accounts", type=int, default=300)
    demo.add_argument("--days", type=int, default=30)
    demo.add_argument("--seed", type=int, default=7)
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

    sim = sub.add_parser("simulate", help="generate a seeded SaaS event stream")
    sim.add_argument("--accounts", type=int, default=200)
    sim.add_argument("--days", type=int, default=30)
    sim.add_argument("--seed", type=int, default=7)
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
    check = features_sub.add_parser("check", help="validate a feature definitions file")
    check.add_argument("file")
    check.set_defaults(func=cmd_features_check)

    train = sub.add_parser("train", help="train a churn model from a JSONL history")
    train.add_argument("--history", required=True, help="JSONL of events v1")
    train.add_argument("--out", required=True, help="directory for model.onnx and metadata.json")
    train.add_argument("--definitions", help="feature definitions file (default: settings)")
    train.add_argument("--horizon-days", type=int, default=28,
                       help="label: cancels within this many days of the observation")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(func=cmd_train)

    rep = sub.add_parser("replay", help="run the dataflow over a JSONL history (backtest)")
    rep.add_argument("--events", required=True, help="JSONL of events v1")
    rep.add_argument("--out", help="directory for the JSONL outputs")
    rep.add_argument("--to-sinks", action="store_true",
                     help="write to the configured Kafka, Redis and PostgreSQL instead")
    rep.add_argument("--definitions", help="feature definitions file (default: settings)")
    rep.add_argument("--model", help="model directory, or 'off' (default: settings)")
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
