//! The load runner's command line: the mode (`sustained` or `neighbours`), the strategies,
//! how long and how hard, and where the results go (the usage is in `main.rs`'s opening
//! comment).

use anyhow::{Context, Result, bail};
use tenancy_core::Strategy;

#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) mode: String,
    pub(crate) strategies: Vec<Strategy>,
    pub(crate) tenants: usize,
    pub(crate) minutes: f64,
    pub(crate) share: f64,
    pub(crate) seconds: u64,
    /// The per-tenant rate of the neighbours' limited run; `None`: the demo's default.
    pub(crate) rate: Option<u32>,
    pub(crate) out: std::path::PathBuf,
}

pub(crate) fn args() -> Result<Args> {
    let mut a = Args {
        mode: "sustained".into(),
        strategies: Vec::new(),
        tenants: 100,
        minutes: 10.0,
        share: 0.8,
        seconds: 20,
        rate: None,
        out: concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/src/results").into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut next = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "sustained" | "neighbours" => a.mode = arg.clone(),
            "--strategy" => {
                let name = next()?;
                let s: Strategy = name.parse()?;
                if !tenancy_benches::STRATEGIES.contains(&s) {
                    bail!("the load runner measures the three strategies, not {s}");
                }
                a.strategies.push(s);
            }
            "--tenants" => a.tenants = next()?.parse()?,
            "--minutes" => a.minutes = next()?.parse()?,
            "--share" => a.share = next()?.parse()?,
            "--seconds" => a.seconds = next()?.parse()?,
            "--rate" => a.rate = Some(next()?.parse()?),
            "--out" => a.out = next()?.into(),
            other => bail!("unknown argument {other}; see the file's opening comment"),
        }
    }
    if a.strategies.is_empty() {
        a.strategies = tenancy_benches::STRATEGIES.to_vec();
    }
    Ok(a)
}
