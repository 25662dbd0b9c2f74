"""Rows a churnwatch run left in its PostgreSQL schema, and how many per 1,000 events.

The write volume a run costs downstream: a score row per event would make the
``risk_scores`` table grow as fast as the event stream, so the benchmark reports
rows per 1,000 valid events next to its throughput.
"""

from __future__ import annotations

from collections.abc import Mapping

from benchmarks.harness.figures import Figures
from benchmarks.harness.quantiles import ratio

# Table -> the figure its rows per 1,000 valid events go to.
PER_THOUSAND_FIGURES = {
    "risk_scores": "score_rows_per_1000_events",
    "decisions": "decision_rows_per_1000_events",
    "alerts": "alert_rows_per_1000_events",
}
CONNECT_TIMEOUT_S = 10


def count_rows(database_url: str, schema: str,
               tables: tuple[str, ...] = tuple(PER_THOUSAND_FIGURES)) -> dict[str, int | None]:
    """``count(*)`` of each of ``tables`` in ``schema``; None for a table it does not hold.

    One connection, one query per table: the counts run after the run has exited,
    outside its clock.
    """
    import psycopg
    from psycopg import sql

    counts: dict[str, int | None] = {}
    with psycopg.connect(database_url, autocommit=True,
                         connect_timeout=CONNECT_TIMEOUT_S) as conn:
        for table in tables:
            name = sql.Identifier(schema, table)
            found = conn.execute("SELECT to_regclass(%s)", (name.as_string(conn),)).fetchone()
            if not found or found[0] is None:
                counts[table] = None
                continue
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(name)).fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts


def rows_per_thousand_events(rows: Mapping[str, int | None], events: float | None) -> Figures:
    """Rows of each table of :data:`PER_THOUSAND_FIGURES` per 1,000 ``events``.

    None for a table that was not counted, or when no events were.
    """
    figures: Figures = {}
    for table, figure in PER_THOUSAND_FIGURES.items():
        share = ratio(rows.get(table), events)
        figures[figure] = None if share is None else share * 1000
    return figures
