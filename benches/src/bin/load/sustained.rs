//! `sustained`: one strategy's maximum rate measured, then a paced run at a share of it over
//! many tenants, every response checked for another tenant's rows, memory read on the way.

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

pub(crate) async fn sustained(args: &Args, strategy: Strategy) -> Result<Value> {
    let db = TestDatabase::create().await?;
    let app = Arc::new(App::start(strategy, &db, &[]).await?);
    let mut tenants = Vec::new();
    for i in 0..args.tenants {
        tenants.push(app.tenant(&format!("t{i}")).await?);
    }
    let tenants = Arc::new(tenants);
    // The maximum: 16 clients as fast as they go.
    let max = Arc::new(Tally::default());
    let probe = Duration::from_secs(10);
    closed_loop(&app, &tenants, 16, probe, &max).await;
    let max_per_second = max.count() as f64 / probe.as_secs_f64();
    let rate = (max_per_second * args.share).max(1.0);
    eprintln!("{strategy}: maximum {max_per_second:.0}/s, running at {rate:.0}/s");

    // An even pace at `rate`, each request its own task (at most 512 in flight).
    let tally = Arc::new(Tally::default());
    let run = Duration::from_secs_f64(args.minutes * 60.0);
    let gate = Arc::new(tokio::sync::Semaphore::new(512));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    let (mut rss_1min, mut n, mut dropped) = (None, 0u64, 0u64);
    while start.elapsed() < run {
        tick.tick().await;
        if rss_1min.is_none() && start.elapsed() >= Duration::from_secs(60) {
            rss_1min = Some(app.rss_mb());
        }
        let Ok(permit) = gate.clone().try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        let (app, tenants, tally) = (app.clone(), tenants.clone(), tally.clone());
        let k = n;
        tokio::spawn(async move {
            let (slug, token) = &tenants[(k as usize * 13) % tenants.len()];
            let begun = Instant::now();
            let outcome = app
                .request(slug, token, k.is_multiple_of(5), 100_000 + k)
                .await;
            tally.add(begun.elapsed(), &outcome);
            drop(permit);
        });
        n += 1;
    }
    let _ = gate.acquire_many(512).await;
    let elapsed = start.elapsed().as_secs_f64();
    let rss_end = app.rss_mb();
    let row = json!({
        "id": strategy.as_str(),
        "parameter": args.tenants.to_string(),
        "tenants": args.tenants,
        "minutes": args.minutes,
        "max_per_second": max_per_second,
        "target_per_second": rate,
        "achieved_per_second": tally.count() as f64 / elapsed,
        "requests": tally.count(),
        "not_sent": dropped,
        "errors": tally.errors.load(Ordering::Relaxed),
        "error_kinds": tally.kinds.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        "leaks": tally.leaks.load(Ordering::Relaxed) + max.leaks.load(Ordering::Relaxed),
        "p50_ms": tally.quantile_ms(0.5),
        "p99_ms": tally.quantile_ms(0.99),
        "rss_1min_mb": rss_1min,
        "rss_end_mb": rss_end,
        "rss_end_vs_1min": rss_1min.map(|m| rss_end / m),
    });
    drop(app);
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.drop_database().await?;
    Ok(row)
}
