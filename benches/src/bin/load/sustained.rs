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

/// One sustained run of `strategy` over `tenants` tenants, its row named `id`, the demo started
/// with `env` on top of its defaults.
pub(crate) async fn sustained(
    args: &Args,
    strategy: Strategy,
    id: &str,
    tenants: usize,
    env: &[(&str, String)],
) -> Result<Value> {
    let db = TestDatabase::create().await?;
    let app = Arc::new(App::start(strategy, &db, env).await?);
    let mut tenants_made = Vec::new();
    for i in 0..tenants {
        tenants_made.push(app.tenant(&format!("t{i}")).await?);
    }
    let tenants = Arc::new(tenants_made);
    // The maximum: 16 clients as fast as they go.
    let max = Arc::new(Tally::default());
    let probe = Duration::from_secs(10);
    closed_loop(&app, &tenants, 16, probe, &max).await;
    let max_per_second = max.count() as f64 / probe.as_secs_f64();
    let rate = (max_per_second * args.share).max(1.0);
    eprintln!("{id}: maximum {max_per_second:.0}/s, running at {rate:.0}/s");

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
    // Every error counts, the maximum's run included.
    let row = json!({
        "id": id,
        "parameter": tenants.len().to_string(),
        "tenants": tenants.len(),
        "minutes": args.minutes,
        "max_per_second": max_per_second,
        "target_per_second": rate,
        "achieved_per_second": tally.count() as f64 / elapsed,
        "requests": tally.count(),
        "not_sent": dropped,
        "errors": tally.errors.load(Ordering::Relaxed) + max.errors.load(Ordering::Relaxed),
        "error_kinds": Tally::kinds_of(&[&max, &tally]),
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

/// pgbench's rate of new connections on this server, without TLS (as the stores connect on
/// loopback), each running one `SELECT 1`: 16 clients (as the maximum's run has) for
/// `seconds`. What separate-db can reach at most when its budget is smaller than its active
/// tenants and every request may open a connection.
pub(crate) async fn pgbench_connect(seconds: u64) -> Result<Value> {
    let db = TestDatabase::create().await?;
    let script =
        std::env::temp_dir().join(format!("tenancy-load-connect-{}.sql", std::process::id()));
    std::fs::write(&script, "SELECT 1;\n")?;
    let out = tokio::process::Command::new("pgbench")
        .args(["-n", "-C", "-M", "simple", "-c", "16", "-j", "2", "-T"])
        .arg(seconds.to_string())
        .arg("-f")
        .arg(&script)
        .arg(db.url())
        .env("PGSSLMODE", "disable")
        .output()
        .await
        .map_err(|e| {
            anyhow::anyhow!("pgbench (PostgreSQL's client programs) could not run: {e}")
        })?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!(
            "pgbench -C failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // With -C, "including" counts the connections, which are the point here.
    let tps = text
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("tps = ")?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench's output:\n{text}"))?;
    db.drop_database().await?;
    Ok(json!({
        "id": "pgbench-connect",
        "parameter": "16",
        "max_per_second": tps,
        "errors": 0,
        "leaks": 0,
    }))
}
