//! The scale runner's command line: what to measure, how much, and where the files go.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use tenancy_core::{MigrateOptions, Strategy};

#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) strategies: Vec<Strategy>,
    pub(crate) tenants: usize,
    pub(crate) projects: usize,
    pub(crate) reads: usize,
    pub(crate) concurrency: usize,
    pub(crate) creates: usize,
    pub(crate) migrate_concurrency: usize,
    pub(crate) rounds: usize,
    pub(crate) out: PathBuf,
    pub(crate) charts: bool,
    pub(crate) charts_only: bool,
    /// Each strategy on one server and on a Citus cluster.
    pub(crate) citus: bool,
}

const USAGE: &str = "scale [--strategy NAME]... [--tenants N=1000] [--projects N=5] \
[--reads N=20000] [--concurrency N=16] [--creates N=50] [--migrate-concurrency N=4] [--rounds N=3] [--out DIR=docs/src/scale] [--no-charts | --charts-only] [--citus]";

pub(crate) fn parse() -> Result<Args> {
    let mut args = Args {
        strategies: Vec::new(),
        tenants: 1_000,
        projects: 5,
        reads: 20_000,
        concurrency: 16,
        creates: 50,
        migrate_concurrency: MigrateOptions::default().concurrency,
        rounds: 3,
        out: PathBuf::from("docs/src/scale"),
        charts: true,
        charts_only: false,
        citus: false,
    };
    let mut out = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{a} needs a value; {USAGE}"))
        };
        match a.as_str() {
            "--strategy" => {
                let v = value()?;
                let s: Strategy = v.parse()?;
                if !tenancy_benches::STRATEGIES.contains(&s) {
                    bail!("the scale runner measures the three strategies, not {s}");
                }
                args.strategies.push(s);
            }
            "--tenants" => args.tenants = value()?.parse()?,
            "--projects" => args.projects = value()?.parse()?,
            "--reads" => args.reads = value()?.parse()?,
            "--concurrency" => args.concurrency = value()?.parse()?,
            "--rounds" => args.rounds = value()?.parse::<usize>()?.max(1),
            "--migrate-concurrency" => args.migrate_concurrency = value()?.parse()?,
            "--creates" => args.creates = value()?.parse::<usize>()?.max(1),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--citus" => args.citus = true,
            "--no-charts" => args.charts = false,
            "--charts-only" => args.charts_only = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    if args.citus {
        args.out = out.unwrap_or_else(|| PathBuf::from("docs/src/scale/citus"));
        if args.strategies.contains(&Strategy::SeparateDb) {
            bail!(
                "separate-db does not run on Citus: --citus takes shared-schema and separate-schema"
            );
        }
        if args.strategies.is_empty() {
            args.strategies = vec![Strategy::SharedSchema, Strategy::SeparateSchema];
        }
    } else {
        args.out = out.unwrap_or(args.out);
    }
    if args.strategies.is_empty() {
        args.strategies = tenancy_benches::STRATEGIES.to_vec();
    }
    if args.tenants > 1_000 && args.strategies.contains(&Strategy::SeparateDb) {
        bail!("separate-db is run at up to 1,000 tenants (each is a database of ~7.5 MB)");
    }
    Ok(args)
}
