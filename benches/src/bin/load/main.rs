//! The load runner: the demo app under load, in a process of its own, for each strategy.
//!
//! `sustained` (the default): mixed reads and writes over `--tenants` tenants (100), first as
//! fast as 16 clients go (the measured maximum, for 10 s), then at `--share` (80 %) of that
//! rate for `--minutes` (10). Every response is checked for another tenant's rows. Reports
//! errors (each kind in full), leaks, p50 and p99, and the app's resident memory after one
//! minute and at the end. Beside separate-db: pgbench's rate of new connections without TLS
//! (`pgbench -C`, the limit of a budget smaller than the active tenants), and separate-db
//! again with a budget that fits its tenants (at most 50).
//!
//! `neighbours`: 50 tenants read at an even pace, alone for `--seconds` (20), then beside one
//! tenant read as fast as 16 clients go, in the same app; once without a per-tenant rate and
//! once with the demo's default (or `--rate`); reports the quiet tenants' p50 and p99 in both
//! phases and what the hot tenant got.
//!
//! Any error or leak fails the run, after its file is written.
//!
//! ```text
//! cargo run --release -p tenancy-benches --bin load -- sustained --minutes 10
//! cargo run --release -p tenancy-benches --bin load -- neighbours
//! ```
//! Results go to `docs/src/results/load.json` and `neighbours.json` (`--out` for another
//! folder), which the book renders. The app runs as this same binary started with `--serve`.
//!
//! One job a file: `args.rs` (the command line), `app.rs` (the app in its child process, and
//! the runner's requests to it), `clients.rs` (closed-loop clients and their tally),
//! `sustained.rs` and `neighbours.rs` (the two modes); here, the mode run and its rows
//! written.

mod app;
mod args;
mod clients;
mod neighbours;
mod sustained;

use anyhow::{Result, bail};
use neighbours::Limit;
use serde_json::{Value, json};
use tenancy_core::Strategy;

/// The most tenants of separate-db's run with a budget that fits them.
const FITS_TENANTS: usize = 50;

fn main() -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--serve") {
        return runtime.block_on(app::serve(&argv[2], &argv[3]));
    }
    let args = args::args()?;
    runtime.block_on(async {
        let mut rows = Vec::new();
        if args.mode == "neighbours" {
            for &s in &args.strategies {
                rows.push(neighbours::neighbours_run(&args, s, Limit::Off).await?);
                rows.push(neighbours::neighbours_run(&args, s, Limit::Defaults(args.rate)).await?);
            }
            write(
                &args,
                "neighbours",
                &format!(
                    "50 tenants read twice a second each, {} s alone, then {} s beside one tenant \
                     read by 16 clients as fast as they go, in one app; without a per-tenant rate \
                     and with the demo's default; single runs",
                    args.seconds, args.seconds
                ),
                json!([["id", "run"], ["limit_per_second", "per-tenant rate"],
                       ["others_alone_p99_ms", "others' p99 alone"], ["others_p99_ms", "others' p99 beside"],
                       ["others_p99_vs_alone", "beside vs alone"], ["others_errors", "others' errors"],
                       ["hot_served_per_second", "hot tenant served"],
                       ["hot_refused_429", "hot tenant's 429s"], ["leaks", "leaks"]]),
                &rows,
            )?;
            fail_on(&rows)?;
        } else {
            for &s in &args.strategies {
                // The app's capacity is the point here, not a tenant's rate: the rate is off.
                let off = [("TENANCY__RATE_LIMIT__PER_TENANT", "0".to_owned())];
                rows.push(sustained::sustained(&args, s, s.as_str(), args.tenants, &off).await?);
                if s == Strategy::SeparateDb {
                    // Beside it: the server's rate of new connections (the limit of a budget
                    // smaller than the active tenants), and a budget that fits them all (at
                    // most 50 tenants: the server's max_connections is 100 on this machine).
                    rows.push(sustained::pgbench_connect(10).await?);
                    let fits = args.tenants.min(FITS_TENANTS);
                    let budget = [off[0].clone(), ("TENANCY__CONNECTIONS_PER_SERVER", (fits + 10).to_string())];
                    rows.push(
                        sustained::sustained(&args, s, "separate-db/fits", fits, &budget).await?,
                    );
                }
            }
            write(
                &args,
                "load",
                &format!(
                    "Mixed reads and writes (one in five) over {} tenants at {:.0} % of the measured \
                     maximum for {} minutes, every response checked for another tenant's rows; single runs",
                    args.tenants,
                    args.share * 100.0,
                    args.minutes
                ),
                json!([["id", "strategy"], ["max_per_second", "maximum"], ["target_per_second", "paced at"],
                       ["achieved_per_second", "sustained"], ["not_sent", "not sent (512 in flight)"],
                       ["requests", "requests"], ["errors", "errors"], ["leaks", "leaks"],
                       ["p50_ms", "p50"], ["p99_ms", "p99"], ["rss_1min_mb", "memory at 1 min"],
                       ["rss_end_mb", "memory at the end"], ["rss_end_vs_1min", "end vs 1 min"]]),
                &rows,
            )?;
            fail_on(&rows)?;
        }
        Ok(())
    })
}

/// A response with another tenant's rows, or any error, fails the run: after the file is
/// written, with what the errors were.
fn fail_on(rows: &[Value]) -> Result<()> {
    let sum = |key: &str| -> u64 { rows.iter().map(|r| r[key].as_u64().unwrap_or(0)).sum() };
    let (leaks, errors) = (sum("leaks"), sum("errors"));
    for r in rows {
        if r["error_kinds"].as_object().is_some_and(|k| !k.is_empty()) {
            eprintln!("{}: {}", r["id"], r["error_kinds"]);
        }
    }
    if leaks > 0 {
        bail!("{leaks} responses showed another tenant's rows");
    }
    if errors > 0 {
        bail!("{errors} requests failed (their kinds are above and in the file)");
    }
    Ok(())
}

fn write(args: &args::Args, name: &str, what: &str, columns: Value, rows: &[Value]) -> Result<()> {
    let postgres = tenancy_benches::psql_version();
    let doc = json!({
        "what": what,
        "unit": "mixed",
        "columns": columns,
        "measured": tenancy_benches::measured(&postgres),
        "rows": rows,
    });
    std::fs::create_dir_all(&args.out)?;
    let path = args.out.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
