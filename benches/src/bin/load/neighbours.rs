//! `neighbours`: 50 quiet tenants alone, then beside one hot tenant, in the same app; once with
//! the demo's per-tenant rate turned off and once as the demo ships (or with `--rate`), and
//! what the quiet ones got in each phase.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};
use tenancy_core::Strategy;
use tenancy_testkit::TestDatabase;

use crate::app::App;
use crate::args::Args;
use crate::clients::{Tally, closed_loop};

/// The demo's per-tenant rate in a neighbours run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    /// Turned off (`rate_limit.per_tenant = 0`).
    Off,
    /// As the demo ships, or the rate `--rate` names.
    Defaults(Option<u32>),
}

/// The 50 quiet tenants, each read every 500 ms (staggered) for `run`, into `tally`.
fn quiet(
    app: &Arc<App>,
    others: &[(String, String)],
    run: Duration,
    tally: &Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    others
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, (slug, token))| {
            let (app, tally) = (app.clone(), tally.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i as u64 * 10)).await;
                let mut tick = tokio::time::interval(Duration::from_millis(500));
                let end = Instant::now() + run;
                while Instant::now() < end {
                    tick.tick().await;
                    let start = Instant::now();
                    let outcome = app.request(&slug, &token, false, 0).await;
                    tally.add(start.elapsed(), &outcome);
                }
            })
        })
        .collect()
}

/// One neighbours run: the quiet tenants alone for `seconds`, then beside a hot tenant read by
/// 16 clients as fast as they go for `seconds`, in one app started with `limit`.
pub(crate) async fn neighbours_run(args: &Args, strategy: Strategy, limit: Limit) -> Result<Value> {
    let db = TestDatabase::create().await?;
    let (env, rate, name): (Vec<(&str, String)>, u32, &str) = match limit {
        Limit::Off => (
            vec![("TENANCY__RATE_LIMIT__PER_TENANT", "0".into())],
            0,
            "unlimited",
        ),
        Limit::Defaults(Some(r)) => (
            vec![("TENANCY__RATE_LIMIT__PER_TENANT", r.to_string())],
            r,
            "limited",
        ),
        Limit::Defaults(None) => (Vec::new(), shipped_rate()?, "limited"),
    };
    let app = Arc::new(App::start(strategy, &db, &env).await?);
    let hot = Arc::new(vec![app.tenant("hot").await?]);
    let mut others = Vec::new();
    for i in 0..50 {
        others.push(app.tenant(&format!("n{i}")).await?);
    }
    let run = Duration::from_secs(args.seconds);

    // Alone: the same app, the same tenants, nobody else.
    let alone = Arc::new(Tally::default());
    for q in quiet(&app, &others, run, &alone) {
        let _ = q.await;
    }
    // Beside the hot tenant.
    let hot_tally = Arc::new(Tally::default());
    let beside = Arc::new(Tally::default());
    let quiet_tasks = quiet(&app, &others, run, &beside);
    closed_loop(&app, &hot, 16, run, &hot_tally).await;
    for q in quiet_tasks {
        let _ = q.await;
    }
    let (alone_p99, beside_p99) = (alone.quantile_ms(0.99), beside.quantile_ms(0.99));
    // A quiet tenant is never over its rate: a 429 for one of them is an error too.
    let others_errors = [&alone, &beside]
        .iter()
        .map(|t| t.errors.load(Ordering::Relaxed) + t.limited.load(Ordering::Relaxed))
        .sum::<u64>();
    let row = json!({
        "id": format!("{}/{name}", strategy.as_str()),
        "parameter": "51",
        "limit_per_second": (rate > 0).then_some(rate),
        "others_alone_p50_ms": alone.quantile_ms(0.5),
        "others_alone_p99_ms": alone_p99,
        "others_p50_ms": beside.quantile_ms(0.5),
        "others_p99_ms": beside_p99,
        "others_p99_vs_alone": beside_p99 / alone_p99.max(f64::MIN_POSITIVE),
        "others_errors": others_errors,
        "hot_served_per_second": hot_tally.ok.load(Ordering::Relaxed) as f64 / run.as_secs_f64(),
        "hot_refused_429": hot_tally.limited.load(Ordering::Relaxed),
        "hot_p50_ms": hot_tally.quantile_ms(0.5),
        "errors": others_errors + hot_tally.errors.load(Ordering::Relaxed),
        "error_kinds": Tally::kinds_of(&[&alone, &beside, &hot_tally]),
        "leaks": hot_tally.leaks.load(Ordering::Relaxed) + beside.leaks.load(Ordering::Relaxed)
            + alone.leaks.load(Ordering::Relaxed),
    });
    drop(app);
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.drop_database().await?;
    Ok(row)
}

/// The per-tenant rate the app is started with when the runner names none: the demo's
/// defaults, read the way the app reads them.
fn shipped_rate() -> Result<u32> {
    Ok(tenancy_demo::settings::Settings::load(None)?
        .rate_limit
        .per_tenant)
}
