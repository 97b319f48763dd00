//! The scale runner: grows each strategy to many tenants and records what it costs.
//!
//! Run with `cargo run --release -p tenancy-benches --bin scale -- --tenants 1000`
//! (`--strategy shared-schema` to pick one; `--help` for the rest). Against `DATABASE_URL`, on
//! the same machine as PostgreSQL (backend memory is read from `/proc`). Per strategy it
//! records tenants created per second, the mean of one more creation at a time with that many
//! present, `migrate_all` with nothing pending and with one new column (the median of
//! `--rounds` runs, each adding one more), p50/p99 scoped read
//! latency under concurrent load spread over every tenant, the connections held on the server,
//! backend memory after the load touched every tenant, and disk per tenant. For
//! separate-schema it also runs the physical baselines with `psql` in the same run: the
//! creation's DDL and the new column, one transaction per schema, the column right after each
//! of the store's rounds. It writes
//! `scale-<strategy>-<tenants>.json` (with the date, commit, CPU, PostgreSQL, Rust and sqlx of
//! the run) into the output folder, which the book renders, and SVG charts of every result
//! file there: one per measure and tenant count (`<measure>-<tenants>.svg`), a bar per
//! strategy in its own colour with its value, psql's bar beside it where the run measured
//! the physical limit, on a logarithmic axis when the values span more than a decade.
//! `--charts-only` redraws them from the files without measuring anything.
//!
//! `--citus` runs shared-schema and separate-schema twice in the same run, on a database of the
//! test server and on one of a Citus cluster (the tests' own coordinator and two workers, or
//! `CITUS_URL`), into `docs/src/scale/citus/` (`scale-<strategy>[-citus]-<tenants>.json`).
//! On Citus the backends' memory and the disk are summed over the coordinator and the workers,
//! the connections counted are those to the coordinator, and creation has no psql baseline
//! (a distributed schema is not the DDL psql would send).
//!
//! One job a file: `args.rs` (the command line), `measure.rs` (a run), `server.rs` (what a run
//! reads from the machine and the server), `psql.rs` (the psql baselines), `results.rs` (the
//! results a run writes) and `charts.rs` (the SVG charts drawn from them).

mod args;
mod charts;
mod measure;
mod psql;
mod results;
mod server;

use anyhow::Result;
use tenancy_testkit::DatabaseOn;

fn main() -> Result<()> {
    let args = args::parse()?;
    std::fs::create_dir_all(&args.out)?;
    let rt = tenancy_benches::runtime();
    let strategies = if args.charts_only {
        &[][..]
    } else {
        &args.strategies[..]
    };
    let on: &[DatabaseOn] = if args.citus {
        &[DatabaseOn::Plain, DatabaseOn::Citus]
    } else {
        &[DatabaseOn::Plain]
    };
    for &strategy in strategies {
        for &on in on {
            let results = rt.block_on(measure::run(strategy, &args, on))?;
            let cluster = if on == DatabaseOn::Citus {
                "-citus"
            } else {
                ""
            };
            let file = args
                .out
                .join(format!("scale-{strategy}{cluster}-{}.json", args.tenants));
            std::fs::write(&file, serde_json::to_string_pretty(&results)? + "\n")?;
            println!("{}", serde_json::to_string(&results)?);
            eprintln!("wrote {}", file.display());
        }
    }
    if args.charts {
        let written = charts::charts(&args.out)?;
        eprintln!("{} charts in {}", written.len(), args.out.display());
    }
    Ok(())
}
