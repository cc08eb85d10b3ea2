#!/usr/bin/env python3
"""The scan work of the `service + min_duration_ms, 24 h` search (docs/benchmarks.md), on a database
loaded by scripts/bench-collector.sh (BENCH_KEEP_DATA=1) and migrated by this collector (the
`traces.max_duration_ns` column). A benchmark, not a test.

For the same random queries the benchmark draws (a facilitator, 500-2,500 ms, a 24-hour window
ending at the newest data a third of the time), walking the window newest first until a page of
20 + 1 is full, as the listing does:

- how many traces' spans are probed without the longest-span bound and with it (read-only), every
  page checked identical;
- with --timing, the listing's SQL timed inside SQLite, best of 5 per query: the statement as
  before (the old start index, created for the run and dropped after: this writes to the database,
  so only on a bench data dir) against the statement with the bound.

    python3 scripts/bench-search-scan.py out/bench-collector-data/tracex.db [--timing] [--queries 50]
"""

import argparse
import random
import sqlite3
import time

DAY = 86400 * 10**9
COLS = "t.id, t.trace_id, t.start_ns, t.end_ns, t.has_root, t.root_name, t.root_service, t.span_count, t.error_count"
PROBE = "EXISTS (SELECT 1 FROM spans s WHERE s.trace_seq = t.id AND s.service = ?2 AND s.duration_ns >= ?3)"
WINDOW = "t.project_id = ?1 AND t.start_ns >= ?4 AND t.start_ns < ?5"
ORDER = "ORDER BY t.start_ns DESC, t.id DESC"
LISTING = {
    "without the bound": f"SELECT {COLS} FROM traces t INDEXED BY tmp_traces_by_start WHERE {WINDOW} AND {PROBE} "
    f"{ORDER} LIMIT 21",
    "with the bound": f"SELECT {COLS} FROM traces t INDEXED BY traces_by_start_duration WHERE {WINDOW} "
    f"AND t.max_duration_ns >= ?3 AND {PROBE} {ORDER} LIMIT 21",
}


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))]


def queries(db, project_id, n):
    lo, hi = db.execute(
        "SELECT min(start_ns), max(start_ns) FROM traces WHERE project_id = ? AND span_count < 1000", (project_id,)
    ).fetchone()
    rng = random.Random(14)
    out = []
    for _ in range(n):
        service = rng.choice(["facilitator-us", "facilitator-eu"])
        min_ns = (500 + rng.randrange(2000)) * 10**6
        end = hi if rng.randrange(3) == 0 else lo + DAY + rng.randrange(hi - lo - DAY)
        out.append((project_id, service, min_ns, end - DAY, end))
    return out


def scan_work(db, qs):
    walked, probed = [], []
    for q in qs:
        rows = db.execute(
            f"SELECT t.id, t.max_duration_ns, {PROBE} FROM traces t WHERE {WINDOW} {ORDER}",
            q,
        )
        n_walked = n_probed = 0
        page, page_bound = [], []
        for seq, longest, match in rows:
            n_walked += 1
            if longest >= q[2]:
                n_probed += 1
                if match:
                    page_bound.append(seq)
            if match:
                page.append(seq)
            if len(page) > 20:
                break
        assert page == page_bound, "the bound must never drop a match"
        walked.append(n_walked)
        probed.append(n_probed)
    print(
        f"{len(qs)} queries, identical pages; traces whose spans are probed per page: without the bound "
        f"p50 {pct(walked, 0.5)} p95 {pct(walked, 0.95)} ({sum(walked)} in all); with it p50 {pct(probed, 0.5)} "
        f"p95 {pct(probed, 0.95)} ({sum(probed)} in all, {sum(probed) / sum(walked):.2f}x)"
    )


def timing(db, qs):
    db.execute("CREATE INDEX IF NOT EXISTS tmp_traces_by_start ON traces (project_id, start_ns)")
    try:
        took = {k: [] for k in LISTING}
        for q in qs:
            answers = [db.execute(sql, q).fetchall() for sql in LISTING.values()]
            assert answers[0] == answers[1], "the same page either way"
            for k, sql in LISTING.items():
                best = float("inf")
                for _ in range(5):
                    t = time.perf_counter()
                    db.execute(sql, q).fetchall()
                    best = min(best, time.perf_counter() - t)
                took[k].append(best * 1000)
        for k, v in took.items():
            print(f"listing SQL {k}: p50 {pct(v, 0.5):.2f} p95 {pct(v, 0.95):.2f} max {max(v):.2f} ms (best of 5)")
    finally:
        db.execute("DROP INDEX tmp_traces_by_start")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("db")
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--queries", type=int, default=50)
    a = ap.parse_args()
    db = sqlite3.connect(a.db) if a.timing else sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
    project_id = db.execute("SELECT id FROM projects WHERE name = 'bench'").fetchone()[0]
    qs = queries(db, project_id, a.queries)
    scan_work(db, qs)
    if a.timing:
        timing(db, qs)


if __name__ == "__main__":
    main()
