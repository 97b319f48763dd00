#!/usr/bin/env python3
"""The one source of the book's measured numbers.

  python3 docs/results.py criterion GROUP...   read criterion's estimates for each group
                                              (e.g. routing_tax/read) from target/criterion
                                              and write docs/src/results/<group>.json
  python3 docs/results.py pgbench [--seconds N] [--rounds N]
                                              run the physical limits with pgbench against
                                              DATABASE_URL (8-second runs, the median of 3
                                              rounds) and write docs/src/results/limits.json
  python3 docs/results.py bench-times [BENCH...] run each criterion bench once in full (all
                                              of them by default), timing it and sampling the
                                              size of its databases, and write
                                              docs/src/results/bench_times.json
  python3 docs/results.py check               fail when a {{#results ...}} marker in a chapter
                                              names a file or a row that does not exist
  (no arguments)                              the mdBook preprocessor (book.toml): replaces each
                                              {{#results FILE}} or {{#results FILE:ROW,ROW}}
                                              with a table rendered from docs/src/results/FILE.json

The scale runner (`cargo run --release -p tenancy-benches --bin scale`) writes one file per
strategy and size into docs/src/scale/ (with `--citus`, into docs/src/scale/citus/, read as
"scale.citus" and "scale.citus.load", a row per strategy on one server and `STRATEGY-citus` on
Citus); they are read as the result "scale" (the creation and
migration table) and "scale.load" (the read load, connections, memory and disk table), with
one row per strategy and tenant count: {{#value scale:separate-schema@1000:create_one_ms}},
and {{#ratio scale:separate-schema@10000:migrate_one_column_ms:separate-schema@1000}} for the
ratio of one field in two rows.

Every result file records when, where and with what it was measured: date, commit, CPU model,
PostgreSQL, Rust and sqlx versions. A chapter never types a measured number; editing a result
file changes the chapter on the next `mdbook build`.
"""
import datetime
import functools
import json
import os
import re
import statistics
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
RESULTS = DOCS / "src" / "results"
MARKER = re.compile(r"\{\{#results\s+([\w/.-]+)(?::([\w,./ -]+))?\}\}")
# One number in prose: {{#value FILE:ROW:FIELD}}, FIELD one of median, ratio (to the
# file's baseline row), per_second, latency.
VALUE = re.compile(r"\{\{#value\s+([\w/.-]+):([\w./@-]+):([a-z0-9_]+)\}\}")
# A target: the value and its verdict, {{#target FILE:ROW:FIELD<=LIMIT}} (or >=).
TARGET = re.compile(r"\{\{#target\s+([\w/.-]+):([\w./@-]+):([a-z0-9_]+)(<=|>=)([\d.]+)\}\}")
RATIO = re.compile(r"\{\{#ratio\s+([\w/.-]+):([\w./@-]+):([a-z0-9_]+):([\w./@-]+)\}\}")
SCALE = DOCS / "src" / "scale"


# --- where and with what -----------------------------------------------------------------------
def run(cmd, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@functools.cache
def machine():
    """Where and with what, taken once per run: the result files this run writes must not
    make the later ones look dirty."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    sqlx = "unknown"
    lock = (ROOT / "Cargo.lock").read_text()
    m = re.search(r'name = "sqlx"\nversion = "([^"]+)"', lock)
    if m:
        sqlx = m.group(1)
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    return {
        "date": datetime.date.today().isoformat(),
        # "-dirty" when the working tree had changes the commit does not hold.
        "commit": run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "postgresql": run(["psql", url, "-Atc", "SHOW server_version"]),
        "rust": run(["rustc", "--version"]),
        "sqlx": sqlx,
    }


def write(name, rows, unit, what, extra=None):
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {"what": what, "unit": unit, "measured": machine(), "rows": rows}
    if extra:
        doc.update(extra)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({len(rows)} rows)")


# --- criterion ---------------------------------------------------------------------------------
def criterion(groups):
    base = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "criterion"
    for group in groups:
        folder = base / group.replace("/", "_")
        if not folder.is_dir():
            sys.exit(f"no criterion results for {group} in {folder}; run the bench first")
        rows = []
        for est in folder.glob("*/*/new/estimates.json"):
            bench = json.loads((est.parent / "benchmark.json").read_text())
            e = json.loads(est.read_text())
            rows.append({
                "id": bench.get("function_id") or est.parents[2].name,
                "parameter": bench.get("value_str") or est.parents[1].name,
                "median": e["median"]["point_estimate"] / 1000.0,
                "low": e["median"]["confidence_interval"]["lower_bound"] / 1000.0,
                "high": e["median"]["confidence_interval"]["upper_bound"] / 1000.0,
            })
        def order(r):
            size = re.match(r"\d+", r["parameter"])
            return (r["id"] != "baseline", r["id"], int(size.group()) if size else 0,
                    r["parameter"])
        rows.sort(key=order)
        write(group.replace("/", "."), rows, "µs",
              f"criterion group {group}: median time per iteration with its 95% interval")


# --- pgbench: the physical limits ------------------------------------------------------------------
SETUP = """
DROP TABLE IF EXISTS limits_plain, limits_rls CASCADE;
CREATE TABLE limits_plain (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO limits_plain SELECT i, 'p' || i FROM generate_series(1, 1000) i;
CREATE TABLE limits_rls (tenant_id uuid NOT NULL, id int NOT NULL, name text NOT NULL,
                         PRIMARY KEY (tenant_id, id));
INSERT INTO limits_rls SELECT '00000000-0000-0000-0000-000000000001', i, 'p' || i
  FROM generate_series(1, 1000) i;
ALTER TABLE limits_rls ENABLE ROW LEVEL SECURITY;
ALTER TABLE limits_rls FORCE ROW LEVEL SECURITY;
CREATE POLICY t ON limits_rls USING
  (tenant_id = (SELECT NULLIF(current_setting('tenancy.tenant_id', true), '')::uuid));
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenancy_limits') THEN
    CREATE ROLE tenancy_limits LOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
END $$;
GRANT SELECT ON limits_plain, limits_rls TO tenancy_limits;
DO $$ DECLARE i int; BEGIN
  FOR i IN 1..1000 LOOP
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS limits_s%s', i);
    EXECUTE format('CREATE TABLE IF NOT EXISTS limits_s%s.t (id int PRIMARY KEY, name text)', i);
    EXECUTE format('INSERT INTO limits_s%s.t SELECT g, ''p'' || g FROM generate_series(1, 10) g
                    ON CONFLICT DO NOTHING', i);
  END LOOP;
END $$;
"""
TENANT = "00000000-0000-0000-0000-000000000001"
READ = "SELECT id, name FROM limits_rls WHERE tenant_id = '" + TENANT + "' AND id = :id"
SCRIPTS = {
    # id: (what, protocol, clients, script, role, extra pgbench options)
    "plain-1": ("point read by primary key, prepared", "prepared", 1,
                "\\set id random(1, 1000)\nSELECT id, name FROM limits_plain WHERE id = :id;\n",
                None, []),
    "plain-8": ("point read by primary key, prepared", "prepared", 8,
                "\\set id random(1, 1000)\nSELECT id, name FROM limits_plain WHERE id = :id;\n",
                None, []),
    "plain-simple-1": ("point read by primary key, simple protocol", "simple", 1,
                       "\\set id random(1, 1000)\nSELECT id, name FROM limits_plain WHERE id = :id;\n",
                       None, []),
    "rls-session-1": ("row-level security read, tenant set once per session (the policy alone)",
                      "prepared", 1, "\\set id random(1, 1000)\n" + READ + ";\n",
                      "session", []),
    "rls-pipelined-1": ("row-level security read: BEGIN + set_config + read + COMMIT pipelined "
                        "(one round trip)", "extended", 1,
                        "\\set id random(1, 1000)\n\\startpipeline\nBEGIN;\n"
                        "SELECT set_config('tenancy.tenant_id', '" + TENANT + "', true);\n"
                        + READ + ";\nCOMMIT;\n\\endpipeline\n", "plain", []),
    "rls-four-1": ("row-level security read as four prepared round trips", "prepared", 1,
                   "\\set id random(1, 1000)\nBEGIN;\n"
                   "SELECT set_config('tenancy.tenant_id', '" + TENANT + "', true);\n"
                   + READ + ";\nCOMMIT;\n", "plain", []),
    "rls-one-message-1": ("row-level security read in one simple-protocol message", "simple", 1,
                          "\\set id random(1, 1000)\nBEGIN \\; SELECT set_config('tenancy.tenant_id', '"
                          + TENANT + "', true) \\; " + READ + " \\; COMMIT;\n", "plain", []),
    "schemas-1-8": ("read from one schema (simple protocol, 8 clients)", "simple", 8,
                    "\\set id random(1, 10)\nSELECT id, name FROM limits_s1.t WHERE id = :id;\n",
                    None, []),
    "schemas-1000-8": ("read from one of 1,000 schemas (simple protocol, 8 clients)", "simple", 8,
                       "\\set s random(1, 1000)\n\\set id random(1, 10)\n"
                       "SELECT id, name FROM limits_s:s.t WHERE id = :id;\n", None, []),
    "connect-8": ("new connection per transaction (pgbench -C), 8 clients", "simple", 8,
                  "SELECT 1;\n", None, ["-C"]),
}


def pgbench(seconds, rounds):
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("set DATABASE_URL to a PostgreSQL the limits may use (a database is created)")
    if not shutil.which("pgbench"):
        sys.exit("pgbench is missing: it comes with PostgreSQL's client programs")
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    db_url = urlunsplit(parts._replace(path="/tenancy_limits"))
    run_or_die(["psql", url, "-qc", "DROP DATABASE IF EXISTS tenancy_limits WITH (FORCE)"])
    run_or_die(["psql", url, "-qc", "CREATE DATABASE tenancy_limits"])
    run_or_die(["psql", db_url, "-q", "-v", "ON_ERROR_STOP=1", "-c", SETUP])
    user = parts.username or "postgres"
    app_url = urlunsplit(parts._replace(path="/tenancy_limits",
                                        netloc=parts.netloc.replace(f"{user}@", "tenancy_limits@", 1)
                                        if "@" in parts.netloc else "tenancy_limits@" + parts.netloc))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = {key: [] for key in SCRIPTS}
        # Round after round over every script (not one script's rounds in a row), so that a
        # slow spell of the machine falls on all of them; the median of the rounds is kept,
        # with the spread (the slowest round's time over the fastest's) beside it.
        for _ in range(rounds):
            for key, (what, protocol, clients, script, role, extra) in SCRIPTS.items():
                f = Path(tmp) / f"{key}.sql"
                f.write_text(script)
                env = dict(os.environ)
                # Without TLS, as the stores connect on loopback (a TLS handshake is most of a
                # new connection's time here).
                env["PGSSLMODE"] = "disable"
                target = db_url
                if role is not None:
                    target = app_url
                if role == "session":
                    env["PGOPTIONS"] = f"-c tenancy.tenant_id={TENANT}"
                out = run_or_die(["pgbench", "-n", "-M", protocol, "-c", str(clients), "-j",
                                  str(min(clients, 2)), "-T", str(seconds), "-f", str(f),
                                  *extra, target], env=env)
                m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out) or \
                    re.search(r"tps = ([\d.]+)", out)
                if not m:
                    sys.exit(f"pgbench {key}: no tps in its output:\n{out}")
                runs[key].append(float(m.group(1)))
                print(f"{key:20} {runs[key][-1]:10.0f}/s")
        for key, (what, protocol, clients, script, role, extra) in SCRIPTS.items():
            tps = statistics.median(runs[key])
            rows.append({"id": key, "what": what, "clients": clients, "per_second": round(tps),
                         "latency_us": round(1e6 * clients / tps, 1),
                         "rounds": [round(t) for t in runs[key]],
                         "spread": round(max(runs[key]) / min(runs[key]), 3)})
    run_or_die(["psql", url, "-qc", "DROP DATABASE IF EXISTS tenancy_limits WITH (FORCE)"])
    write("limits", rows, "per second",
          f"pgbench, the median of {rounds} {seconds}-second runs of each script (rounds "
          f"taken in turn), loopback without TLS, the same server as the benches",
          {"seconds": seconds, "rounds": rounds})


# --- how long each bench takes, and what disk it needs -----------------------------------------
BENCHES = ["routing_tax", "separate_schema_routing", "tenant_spread", "lifecycle", "migrate_all",
           "http", "citus"]


def bench_times(benches):
    """Runs each bench in full, once, and records its wall time, how many benchmarks it ran and
    the most disk its databases held (the testkit's `tenancy_test_*` databases, sampled every
    two seconds with psql)."""
    import threading
    import time
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("bench-times needs DATABASE_URL (the server the benches create databases on)")
    run_or_die(["cargo", "bench", "-p", "tenancy-benches", "--no-run"])
    size = ("SELECT coalesce(sum(pg_database_size(datname)), 0) FROM pg_database "
            "WHERE datname LIKE 'tenancy\\_test\\_%'")
    rows = []
    for bench in benches or BENCHES:
        peak, done = [0], threading.Event()

        def sample():
            while not done.wait(2):
                out = run(["psql", "-X", "-At", url, "-c", size])
                if out.isdigit():
                    peak[0] = max(peak[0], int(out))

        watcher = threading.Thread(target=sample)
        watcher.start()
        started = time.monotonic()
        out = subprocess.run(["cargo", "bench", "-p", "tenancy-benches", "--bench", bench],
                             capture_output=True, text=True)
        wall = time.monotonic() - started
        done.set()
        watcher.join()
        if out.returncode != 0:
            sys.exit(f"cargo bench --bench {bench} failed:\n{out.stderr[-4000:]}")
        count = sum(1 for line in out.stdout.splitlines() if line.strip().startswith("time:"))
        rows.append({"id": bench, "benchmarks": count, "wall_ms": wall * 1000,
                     "disk_peak_mb": peak[0] / 1024 / 1024})
        print(f"{bench}: {count} benchmarks in {wall:.0f} s, databases at most "
              f"{peak[0] / 1024 / 1024:,.0f} MB", file=sys.stderr)
    write("bench_times", rows, "ms",
          "Each bench run once in full with `cargo bench -p tenancy-benches --bench NAME` (built "
          "beforehand): its wall time, set-up included, and the most disk its databases held "
          "(sampled every 2 s); one run each",
          extra={"columns": [["id", "bench"], ["benchmarks", "benchmarks"],
                             ["wall_ms", "run time"], ["disk_peak_mb", "databases at the peak"]]})


def run_or_die(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd[:2])} failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout + p.stderr


# --- rendering ---------------------------------------------------------------------------------
SCALES = {"scale": "", "scale.load": "", "scale.citus": "citus", "scale.citus.load": "citus"}


def is_scale(name):
    return name in SCALES


def load_scale(folder=""):
    """The scale runner's files in docs/src/scale/FOLDER as one result: a row per strategy (and
    cluster) and tenant count, with the ratios to the psql baselines where the run has them."""
    rows = []
    for f in sorted((SCALE / folder).glob("scale-*.json")):
        r = json.loads(f.read_text())
        if "measured" not in r:
            raise KeyError(f"{f.relative_to(ROOT)} predates the recorded run details: rerun it")
        rid = r["strategy"] + (f"-{r['cluster']}" if r.get("cluster") else "")
        row = dict(r, id=rid, parameter=str(r["tenants"]), file=f.name)
        if r.get("psql_create_one_ms"):
            row["create_vs_psql"] = r["create_one_ms"] / r["psql_create_one_ms"]
        if r.get("psql_add_column_ms"):
            row["add_column_vs_psql"] = r["migrate_one_column_ms"] / r["psql_add_column_ms"]
        if r.get("psql_add_column_bookkept_ms"):
            row["add_column_vs_bookkept"] = (r["migrate_one_column_ms"]
                                             / r["psql_add_column_bookkept_ms"])
        row["migrate_one_column_per_tenant_ms"] = r["migrate_one_column_ms"] / max(1, r["tenants"])
        rows.append(row)
    if not rows:
        raise KeyError(f"no scale results in docs/src/scale/{folder}: run the scale runner")
    rows.sort(key=lambda r: (r["tenants"], ["shared-schema", "separate-schema",
                                            "separate-db"].index(r["strategy"]),
                             r.get("cluster") or ""))
    return {"what": "the scale runner", "unit": "mixed", "rows": rows}


@functools.lru_cache(maxsize=None)
def load(name):
    """A result by name (read once per run of this script; callers do not change it)."""
    if is_scale(name):
        return load_scale(SCALES[name])
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"no result file {path.relative_to(ROOT)}")
    return json.loads(path.read_text())


def fmt(x, unit):
    if unit == "µs":
        if x >= 1_000_000:
            return f"{x / 1e6:,.2f} s"
        if x >= 10_000:
            return f"{x / 1000:,.1f} ms"
        if x >= 1000:
            return f"{x / 1000:,.2f} ms"
        return f"{x:,.0f} µs" if x >= 100 else f"{x:,.1f} µs"
    return f"{x:,.0f}"


def field(r, key):
    """One field of a scale row, formatted by its name's unit suffix."""
    if key not in r or r[key] is None:
        raise KeyError(f"row {r['id']}@{r.get('parameter')} has no {key}")
    return fmt_field(key, r[key])


def fmt_field(key, x):
    if "_vs_" in key or key.endswith("_ratio"):
        return f"{x:.2f}×"
    if key.endswith("_ms"):
        return f"{x / 1000:,.2f} s" if x >= 1000 else (f"{x:,.1f} ms" if x >= 10 else
                                                          f"{x:,.2f} ms")
    if key.endswith("_us"):
        return f"{x / 1000:,.1f} ms" if x >= 10000 else f"{x:,.0f} µs"
    if key.endswith("_per_second"):
        return f"{x:,.0f}/s"
    if key.endswith("_mb"):
        return f"{x:,.0f} MB"
    if key.endswith("_kb"):
        return f"{x:,.0f} kB"
    return f"{x:,}" if isinstance(x, int) else f"{x:,.2f}"


def scale_footer(rows, folder=""):
    runs = sorted({(r["measured"]["date"], r["measured"]["commit"]) for r in rows})
    m = rows[0]["measured"]
    when = "; ".join(f"{d} at commit `{c}`" for d, c in runs)
    # Files from before `--rounds` record none: their column change is one run too.
    rounds = sorted({r.get("rounds") or 1 for r in rows})
    single = [f"{r['strategy']} at {r['tenants']:,}" for r in rows if (r.get("rounds") or 1) == 1]
    column = (f"the median of {' or '.join(map(str, (n for n in rounds if n > 1)))} rounds, "
              f"psql's right after each of the store's" if any(n > 1 for n in rounds) else "")
    if single:
        column += ("; " if column else "") + "one run for " + ", ".join(single)
    return (f"*The scale runner: five projects per tenant, {rows[0]['reads']:,} reads "
            f"{rows[0]['concurrency']} in flight spread over every tenant; each figure is one "
            f"run, except the column change: {column}. Measured {when} on {m['cpu']} "
            f"({m['cores']} cores), PostgreSQL {m['postgresql']}, {m['rust']}, sqlx "
            f"{m['sqlx']}; from `docs/src/scale/{folder + '/' if folder else ''}`.*")


def render_scale(name, rows):
    f = lambda r, k: field(r, k) if r.get(k) is not None else "–"
    if not name.endswith(".load"):
        lines = ["| strategy | tenants | created per second | one more creation | psql, same DDL "
                 "| vs psql | `migrate_all`, nothing pending | one new column | per tenant "
                 "| psql, one transaction per schema | vs psql | psql with the store's bookkeeping "
                 "| vs that |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(
                f"| {r['id']} | {r['tenants']:,} | {f(r, 'tenants_created_per_second')} | "
                f"{f(r, 'create_one_ms')} | {f(r, 'psql_create_one_ms')} | "
                f"{f(r, 'create_vs_psql')} | {f(r, 'migrate_nothing_pending_ms')} | "
                f"{f(r, 'migrate_one_column_ms')} | {f(r, 'migrate_one_column_per_tenant_ms')} | "
                f"{f(r, 'psql_add_column_ms')} | {f(r, 'add_column_vs_psql')} | "
                f"{f(r, 'psql_add_column_bookkept_ms')} | {f(r, 'add_column_vs_bookkept')} |")
    else:
        lines = ["| strategy | tenants | read p50 | read p99 | reads per second "
                 "| server connections | backend memory | disk per tenant |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(
                f"| {r['id']} | {r['tenants']:,} | {f(r, 'read_p50_us')} | "
                f"{f(r, 'read_p99_us')} | {f(r, 'reads_per_second')} | "
                f"{r['server_connections']} | {f(r, 'backend_memory_mb')} | "
                f"{f(r, 'disk_per_tenant_kb')} |")
    lines += ["", scale_footer(rows, SCALES[name])]
    return "\n".join(lines)


def render(name, only):
    doc = load(name)
    rows = doc["rows"]
    if only:
        wanted = [w.strip() for w in only.split(",")]
        known = {r["id"] for r in rows}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise KeyError(f"{name}: no rows {', '.join(missing)}")
        rows = [r for w in wanted for r in rows if r["id"] == w]
    if is_scale(name):
        return render_scale(name, rows)
    m = doc["measured"]
    lines = []
    if doc.get("columns"):
        # A runner's table (the load runner's files): the columns it names, each formatted
        # by its field name's unit suffix.
        cols = doc["columns"]
        lines += ["| " + " | ".join(h for _, h in cols) + " |",
                  "|---|" + "---:|" * (len(cols) - 1)]
        for r in rows:
            cells = [f"`{r['id']}`"] + [("–" if r.get(k) is None else fmt_field(k, r[k]))
                                       for k, _ in cols[1:]]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"*{doc['what']}. Measured {m['date']} at commit `{m['commit']}` on "
                  f"{m['cpu']} ({m['cores']} cores), PostgreSQL {m['postgresql']}, {m['rust']}, "
                  f"sqlx {m['sqlx']}; from `docs/src/results/{name}.json`.*"]
        return "\n".join(lines)
    if name == "limits":
        lines += ["| pgbench run | clients | per second | per read | spread |",
                  "|---|---:|---:|---:|---:|"]
        for r in rows:
            spread = f"{r['spread']:.2f}×" if r.get("spread") else "–"
            lines.append(f"| {r['what']} (`{r['id']}`) | {r['clients']} | "
                         f"{r['per_second']:,} | {r['latency_us']:.0f} µs | {spread} |")
    else:
        base = next((r for r in doc["rows"] if r["id"] == "baseline"), None)
        bare = next((s for s in COMPARED if any(r["id"].endswith(f"/{s}") for r in doc["rows"])),
                    None)
        sizes = len({r["id"] for r in doc["rows"]}) < len(doc["rows"])
        against = "vs baseline" if base else (f"vs {bare}" if bare else
                                              ("vs its first size" if sizes else None))
        if against:
            lines += [f"| variant | median | 95% interval | {against} |", "|---|---:|---:|---:|"]
        else:
            lines += ["| variant | median | 95% interval |", "|---|---:|---:|"]
        for r in rows:
            line = (f"| `{r['id']}` ({r['parameter']}) | {fmt(r['median'], doc['unit'])} | "
                    f"{fmt(r['low'], doc['unit'])} to {fmt(r['high'], doc['unit'])} |")
            if against:
                b = base or baseline_of(doc, r)
                line += f" {r['median'] / b['median']:.2f}× |" if b else " no bare run |"
            lines.append(line)
    lines.append("")
    lines.append(f"*{doc['what']}. Measured {m['date']} at commit `{m['commit']}` on {m['cpu']} "
                 f"({m['cores']} cores), PostgreSQL {m['postgresql']}, {m['rust']}, sqlx "
                 f"{m['sqlx']}; from `docs/src/results/{name}.json`.*")
    return "\n".join(lines)


# What a row `route/variant` is compared with when its file has no `baseline` row: the http
# bench's `route/bare`, routing_tax/entity's `route/builder`, the citus bench's limits
# `route/pgbench` (citus/read) and `route/psql` (citus/add_column).
COMPARED = ("bare", "builder", "pgbench", "psql")


def baseline_of(doc, r):
    """What a row without a `baseline` row beside it is compared with: `route/bare` or
    `route/builder` (or `route/pgbench`, `route/psql`) for `route/variant`, else the same variant's first size (tenant_spread)."""
    route, _, _ = r["id"].rpartition("/")
    for s in COMPARED:
        if route and any(x["id"].endswith(f"/{s}") for x in doc["rows"]):
            return next((x for x in doc["rows"] if x["id"] == f"{route}/{s}"), None)
    return next(x for x in doc["rows"] if x["id"] == r["id"])


def find_row(doc, name, row):
    rid, _, param = row.partition("@")
    r = next((r for r in doc["rows"]
              if r["id"] == rid and (not param or r.get("parameter") == param)), None)
    if r is None:
        raise KeyError(f"{name}: no row {row}")
    return r


def raw(name, row, key):
    """The number behind {{#value}} and {{#target}}: a field of a scale row, or a criterion or
    pgbench row's median, ratio (against the file's baseline row, or else the same variant's
    first size), per_second or latency."""
    doc = load(name)
    r = find_row(doc, name, row)
    if is_scale(name) or doc.get("columns"):
        if r.get(key) is None:
            raise KeyError(f"{name}: row {row} has no {key}")
        return r[key]
    if key == "ratio":
        base = next((b for b in doc["rows"] if b["id"] == "baseline"), None) or \
            baseline_of(doc, r)
        if base is None:
            raise KeyError(f"{name}: nothing to compare {row} with")
        return r["median"] / base["median"]
    if key == "latency":
        return r["latency_us"]
    if key in ("median", "per_second"):
        return r[key]
    raise KeyError(f"{name}: no field {key} (median, ratio, per_second or latency)")


def value(name, row, key):
    """One number, formatted; ROW is an id, or id@parameter where an id has several
    (tenant_spread, the scale runner's files)."""
    x = raw(name, row, key)
    if is_scale(name) or load(name).get("columns"):
        return fmt_field(key, x)
    if key == "median":
        return fmt(x, load(name)["unit"])
    if key == "ratio":
        return f"{x:.2f}×"
    if key == "per_second":
        return f"{x:,}"
    return f"{x:.0f} µs"


def target(name, row, key, op, limit):
    x, limit = raw(name, row, key), float(limit)
    met = x <= limit if op == "<=" else x >= limit
    shown = value(name, row, key)
    # A value that rounds onto its limit (0.496 shown as 0.50× against >= 0.5) would read as
    # the limit itself beside "missed": shown with as many digits as tell them apart.
    if x != limit and shown.endswith("×"):
        digits = 2
        while f"{x:.{digits}f}" == f"{limit:.{digits}f}" and digits < 6:
            digits += 1
        shown = f"{x:.{digits}f}×"
    return f"{shown} **{'met' if met else 'missed'}**"


def ratio(name, row, key, other):
    """The ratio of field KEY in ROW to the same field in OTHER, in one result."""
    doc = load(name)
    a, b = find_row(doc, name, row), find_row(doc, name, other)
    for r, label in ((a, row), (b, other)):
        if r.get(key) is None:
            raise KeyError(f"{name}: row {label} has no {key}")
    return f"{a[key] / b[key]:.1f}×"


def expand(text):
    text = MARKER.sub(lambda mt: render(mt.group(1), mt.group(2)), text)
    text = RATIO.sub(lambda mt: ratio(*mt.groups()), text)
    text = TARGET.sub(lambda mt: target(*mt.groups()), text)
    return VALUE.sub(lambda mt: value(mt.group(1), mt.group(2), mt.group(3)), text)


# A marker the expressions above do not take (a typo, a field with another character) would
# reach the reader as it was written.
LEFT = re.compile(r"\{\{#(?:results|value|target|ratio)\b[^}]*\}?\}?")


def check():
    errors = []
    for md in (DOCS / "src").rglob("*.md"):
        try:
            left = LEFT.findall(expand(md.read_text()))
        except (KeyError, ValueError) as e:
            errors.append(f"{md.relative_to(DOCS)}: {e.args[0]}")
            continue
        errors += [f"{md.relative_to(DOCS)}: a marker that does not render: {m!r}" for m in left]
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


def preprocess():
    context, book = json.load(sys.stdin)

    def walk(items):
        for item in items:
            chapter = item.get("Chapter") if isinstance(item, dict) else None
            if chapter:
                chapter["content"] = expand(chapter["content"])
                walk(chapter.get("sub_items", []))

    walk(book.get("sections") or book.get("items") or [])
    json.dump(book, sys.stdout)


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        preprocess()
    elif args[0] == "supports":
        sys.exit(0)
    elif args[0] == "criterion":
        criterion(args[1:])
    elif args[0] == "pgbench":
        secs = int(args[args.index("--seconds") + 1]) if "--seconds" in args else 8
        rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 3
        pgbench(secs, rounds)
    elif args[0] == "bench-times":
        bench_times(args[1:])
    elif args[0] == "check":
        sys.exit(check())
    else:
        sys.exit(__doc__)
