"""Benchmark: our log-bucket histograms vs ClickHouse's own quantileDD states, same durations.

    python bench/sketches.py [--rows 2000000] [--days 30] [--groups 6] [--iterations 30]

Issue 9.4 asks whether `quantileDD` states could replace the hand-made histograms. For
`--rows` durations (log-spread 1 ms .. ~60 s) in `--days` x `--groups` buckets it prints:

* accuracy: the largest relative error of p50/p90/p95/p99 against the exact value at rank
  q*(n-1), per bucket and over the whole range, for both (both are DDSketch at 1%);
* merge cost: a 30-day read merging one stored state per (day, group), timed both ways
  (our sparse histograms through queries/rollups/latency_rows.sql, the statement the
  ledger read uses: each laid out dense and added with sumForEach; quantilesDDMerge over
  quantileDD states);
* retraction: whether a state can take a contribution back, which the ledger needs to
  stay exact when a trace changes (ours: adding negative counts; quantileDD: no operation).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.clickhouse import ClickHouse, connect, load_query
from service.rollups.sketch import bucket_value, position_index
from service.settings import Settings

LEVELS = (0.5, 0.9, 0.95, 0.99)

DURATIONS = """
CREATE TABLE durations ENGINE = MergeTree ORDER BY (day, grp) AS
SELECT number % {days:UInt32} AS day, intDiv(number, {days:UInt32}) % {groups:UInt32} AS grp,
       toInt64(round(exp((cityHash64(number) % 100000) / 100000.0 * 11))) AS ms
FROM numbers({rows:UInt64})
"""
# Our stored form: per (day, group) a sparse histogram, as the ledger's bucket rows hold it.
OURS = """
CREATE TABLE ours ENGINE = MergeTree ORDER BY (day, grp) AS
SELECT day, grp, h.1 AS h_slots, h.2 AS h_counts
FROM
(
    SELECT day, grp,
           sumMap([if(ms < 1, toInt16(-32768), toInt16(ceil(log(ms) / log(1.01 / 0.99))))],
                  [toInt64(1)]) AS h
    FROM durations GROUP BY day, grp
)
"""
THEIRS = """
CREATE TABLE theirs ENGINE = MergeTree ORDER BY (day, grp) AS
SELECT day, grp, quantilesDDState(0.01, 0.5, 0.9, 0.95, 0.99)(toFloat64(ms)) AS state
FROM durations GROUP BY day, grp
"""
# The exact value at rank q * (n - 1) per group, over every day.
EXACT = """
SELECT grp, arrayMap(q -> arraySort(groupArray(ms))[toUInt64(floor(q * (count() - 1))) + 1],
                     [0.5, 0.9, 0.95, 0.99])
FROM durations GROUP BY grp ORDER BY grp
"""
READ_OURS = f"""
WITH source AS
(
    SELECT toDateTime('2026-11-01 00:00:00', 'UTC') AS hour, '' AS model, '' AS provider,
           '' AS type, toString(grp) AS name, '' AS environment, arraySum(h_counts) AS n,
           0 AS sum_ms, 0 AS orphans, 0 AS skewed, h_slots AS slots, h_counts AS counts
    FROM ours
)
{load_query("rollups/latency_rows")}
"""
# latency_rows' parameters: one bucket for the whole range, grouped by name (the group).
READ_PARAMS = {
    "day": False,
    "by_model": False,
    "by_provider": False,
    "by_type": False,
    "by_name": True,
    "by_environment": False,
}
READ_THEIRS = """
SELECT grp, quantilesDDMerge(0.01, 0.5, 0.9, 0.95, 0.99)(state)
FROM theirs GROUP BY grp ORDER BY grp
"""


Rows = list[tuple[object, ...]]


def timed(
    ch: ClickHouse, sql: str, iterations: int, params: dict[str, object] | None = None
) -> tuple[float, float, Rows]:
    """Median and p95 ms of `iterations` runs, and the rows."""
    samples: list[float] = []
    rows: Rows = []
    for _ in range(iterations):
        began = time.perf_counter()
        rows = ch.query_rows("bench:read", params, sql=sql)
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))], rows


def worst_error(got: list[list[float]], exact: list[list[float]]) -> float:
    return max(
        abs(g - e) / e if e else abs(g)
        for got_row, exact_row in zip(got, exact, strict=True)
        for g, e in zip(got_row, exact_row, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--groups", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ta-bench-sketch-") as tmp:
        ch = connect(Settings(clickhouse_url=f"chdb://{tmp}/data", query_timeout_seconds=3600))
        try:
            params = {"rows": args.rows, "days": args.days, "groups": args.groups}
            ch.command("bench:durations", params, sql=DURATIONS)
            ch.command("bench:ours", sql=OURS)
            ch.command("bench:theirs", sql=THEIRS)
            exact = [[float(v) for v in row[1]] for row in ch.query_rows("bench:exact", sql=EXACT)]
            ours_p50, ours_p95, ours_rows = timed(ch, READ_OURS, args.iterations, READ_PARAMS)
            theirs_p50, theirs_p95, theirs_rows = timed(ch, READ_THEIRS, args.iterations)
            # latency_rows: bucket, g_name, g_model, g_provider, g_type, s_count, s_sum_ms,
            # s_orphans, s_skewed, h_running, s_positions (p50 .. p99, max).
            ours = [
                [bucket_value(position_index(int(p))) for p in row[-1][:4]] for row in ours_rows
            ]
            theirs = [[float(v) for v in row[1]] for row in theirs_rows]
            print(
                f"{args.rows:,} durations, {args.days} days x {args.groups} groups, "
                f"30-day read per group merging {args.days} states each"
            )
            print(f"{'':28}{'worst rel. error':>18}{'read p50':>11}{'p95':>9}")
            print(
                f"{'ours (sparse histograms)':28}{worst_error(ours, exact):>17.4%}"
                f"{ours_p50:>9.1f}ms{ours_p95:>7.1f}ms"
            )
            print(
                f"{'quantileDD states':28}{worst_error(theirs, exact):>17.4%}"
                f"{theirs_p50:>9.1f}ms{theirs_p95:>7.1f}ms"
            )
            print(
                "retraction: ours adds negative counts (exact); quantileDD states have no "
                "subtraction, so a changed trace would force rebuilding every bucket it touched"
            )
        finally:
            ch.close()


if __name__ == "__main__":
    main()
