//! `neighbours`: one hot tenant beside 50 quiet ones, with and without the demo's per-tenant
//! rate, and what the quiet ones got.

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

/// One neighbours run: a hot tenant read by 16 clients as fast as they go, 50 others read at
/// 2 a second each, for `seconds`; with the demo's per-tenant rate `limit` when given.
pub(crate) async fn neighbours_run(
    args: &Args,
    strategy: Strategy,
    limit: Option<u32>,
) -> Result<Value> {
    let db = TestDatabase::create().await?;
    let env: Vec<(&str, String)> = limit
        .map(|r| vec![("TENANCY__RATE_LIMIT__PER_TENANT", r.to_string())])
        .unwrap_or_default();
    let app = Arc::new(App::start(strategy, &db, &env).await?);
    let hot = Arc::new(vec![app.tenant("hot").await?]);
    let mut others = Vec::new();
    for i in 0..50 {
        others.push(app.tenant(&format!("n{i}")).await?);
    }
    let run = Duration::from_secs(args.seconds);
    let hot_tally = Arc::new(Tally::default());
    let others_tally = Arc::new(Tally::default());
    let quiet: Vec<_> = others
        .into_iter()
        .enumerate()
        .map(|(i, (slug, token))| {
            let (app, tally) = (app.clone(), others_tally.clone());
            tokio::spawn(async move {
                // Staggered, then every 500 ms.
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
        .collect();
    closed_loop(&app, &hot, 16, run, &hot_tally).await;
    for q in quiet {
        let _ = q.await;
    }
    let row = json!({
        "id": format!("{}/{}", strategy.as_str(), if limit.is_some() { "limited" } else { "unlimited" }),
        "parameter": "51",
        "limit_per_second": limit,
        "others_p50_ms": others_tally.quantile_ms(0.5),
        "others_p99_ms": others_tally.quantile_ms(0.99),
        "others_errors": others_tally.errors.load(Ordering::Relaxed) + others_tally.limited.load(Ordering::Relaxed),
        "hot_served_per_second": hot_tally.ok.load(Ordering::Relaxed) as f64 / run.as_secs_f64(),
        "hot_refused_429": hot_tally.limited.load(Ordering::Relaxed),
        "hot_p50_ms": hot_tally.quantile_ms(0.5),
        "leaks": hot_tally.leaks.load(Ordering::Relaxed) + others_tally.leaks.load(Ordering::Relaxed),
    });
    drop(app);
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.drop_database().await?;
    Ok(row)
}
