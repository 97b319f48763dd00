//! The load runner: the demo app under load, in a process of its own, for each strategy.
//!
//! `sustained` (the default): mixed reads and writes over `--tenants` tenants (100), first as
//! fast as 16 clients go (the measured maximum, for 10 s), then at `--share` (80 %) of that
//! rate for `--minutes` (10). Every response is checked for another tenant's rows. Reports
//! errors (and what they were), leaks, p50 and p99, and the app's resident memory after one
//! minute and at the end. A leak fails the run; errors are reported.
//!
//! `neighbours`: one tenant read as fast as 16 clients go beside 50 others read at an even
//! pace, for `--seconds` (20), without the demo's limits and then with a rate of `--rate`
//! (200 a second) per tenant; reports the others' p50 and p99 and what the hot tenant got.
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
use serde_json::{Value, json};

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
                rows.push(neighbours::neighbours_run(&args, s, None).await?);
                rows.push(neighbours::neighbours_run(&args, s, Some(args.rate)).await?);
            }
            let leaks: u64 = rows.iter().map(|r| r["leaks"].as_u64().unwrap_or(0)).sum();
            write(
                &args,
                "neighbours",
                &format!(
                    "One tenant read by 16 clients as fast as they go beside 50 tenants read twice \
                     a second each, {} s, without limits and with a per-tenant rate; single runs",
                    args.seconds
                ),
                json!([["id", "run"], ["others_p50_ms", "others' p50"], ["others_p99_ms", "others' p99"],
                       ["others_errors", "others' errors"], ["hot_served_per_second", "hot tenant served"],
                       ["hot_refused_429", "hot tenant's 429s"], ["leaks", "leaks"]]),
                rows,
            )?;
            if leaks > 0 {
                bail!("{leaks} responses showed another tenant's rows");
            }
        } else {
            for &s in &args.strategies {
                rows.push(sustained::sustained(&args, s).await?);
            }
            // Errors are reported (the book shows them against their target of 0); a response
            // with another tenant's rows fails the run.
            let leaks: u64 = rows.iter().map(|r| r["leaks"].as_u64().unwrap_or(0)).sum();
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
                rows,
            )?;
            if leaks > 0 {
                bail!("{leaks} responses showed another tenant's rows");
            }
        }
        Ok(())
    })
}

fn write(
    args: &args::Args,
    name: &str,
    what: &str,
    columns: Value,
    rows: Vec<Value>,
) -> Result<()> {
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
