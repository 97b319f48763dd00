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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tenancy_core::Strategy;
use tenancy_testkit::TestDatabase;
use tokio::io::{AsyncBufReadExt, BufReader};

const ADMIN: &str = "load-runner-admin-token";

#[derive(Debug, Clone)]
struct Args {
    mode: String,
    strategies: Vec<Strategy>,
    tenants: usize,
    minutes: f64,
    share: f64,
    seconds: u64,
    rate: u32,
    out: std::path::PathBuf,
}

fn args() -> Result<Args> {
    let mut a = Args {
        mode: "sustained".into(),
        strategies: Vec::new(),
        tenants: 100,
        minutes: 10.0,
        share: 0.8,
        seconds: 20,
        rate: 200,
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
            "--rate" => a.rate = next()?.parse()?,
            "--out" => a.out = next()?.into(),
            other => bail!("unknown argument {other}; see the file's opening comment"),
        }
    }
    if a.strategies.is_empty() {
        a.strategies = tenancy_benches::STRATEGIES.to_vec();
    }
    Ok(a)
}

/// In the child: serve the demo on `url` with `strategy`, print the port, run until killed.
async fn serve(strategy: &str, url: &str) -> Result<()> {
    use tenancy_demo::settings::Settings;
    use tenancy_demo::startup::{Application, Backend};
    let mut settings = Settings::load(None)?;
    settings.strategy = Some(strategy.to_owned());
    settings.database_url = Some(url.to_owned().into());
    settings.http.port = 0;
    settings.admin_token = Some(ADMIN.to_owned().into());
    settings.sample_data = false;
    let strategy = tenancy_demo::strategy::pick(Some(strategy))?;
    let backend = Backend::open(strategy, url, &settings).await?;
    let app = Application::build(&settings, &backend, ADMIN)?;
    println!("PORT {}", app.port());
    app.run_until_stopped().await?;
    Ok(())
}

/// The app in a child process of its own, so its memory is its own.
struct App {
    child: tokio::process::Child,
    base: String,
    client: reqwest::Client,
}

impl App {
    async fn start(strategy: Strategy, db: &TestDatabase, env: &[(&str, String)]) -> Result<Self> {
        let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
        cmd.args(["--serve", strategy.as_str(), db.url()])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let port = loop {
            let line = lines
                .next_line()
                .await?
                .context("the app exited before serving")?;
            if let Some(port) = line.strip_prefix("PORT ") {
                break port.trim().to_owned();
            }
        };
        Ok(App {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()?,
        })
    }

    /// The app's resident memory, in MB.
    fn rss_mb(&self) -> f64 {
        let pid = self.child.id().unwrap_or(0);
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
                line.split_whitespace().nth(1)?.parse::<f64>().ok()
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }

    async fn admin(&self, path: &str, body: Value) -> Result<Value> {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("{path}: {}", res.status());
        }
        Ok(res.json().await.unwrap_or(Value::Null))
    }

    /// A tenant with an owner, five projects named after it, and the owner's token.
    async fn tenant(&self, slug: &str) -> Result<(String, String)> {
        self.admin("/admin/tenants", json!({"slug": slug, "name": slug}))
            .await?;
        let user = self
            .admin(
                "/admin/users",
                json!({"email": format!("{slug}@example.com"), "name": slug}),
            )
            .await?;
        let user = user["id"].as_str().context("user id")?.to_owned();
        let res = self
            .client
            .put(format!("{}/admin/tenants/{slug}/members/{user}", self.base))
            .bearer_auth(ADMIN)
            .json(&json!({"role": "owner"}))
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("membership: {}", res.status());
        }
        let token = self
            .admin(&format!("/admin/users/{user}/tokens"), json!({}))
            .await?;
        let token = token["token"].as_str().context("token")?.to_owned();
        for i in 0..5 {
            self.request(slug, &token, true, i).await?;
        }
        Ok((slug.to_owned(), token))
    }

    /// One request of the mix for `slug`: a project created (named after the tenant) or the
    /// first page read. `Ok(leak)`: whether the response showed a row of another tenant.
    async fn request(&self, slug: &str, token: &str, write: bool, n: u64) -> Result<bool> {
        let url = format!("{}/t/{slug}/api/projects", self.base);
        let req = if write {
            self.client
                .post(&url)
                .json(&json!({"name": format!("{slug}-{n}")}))
        } else {
            self.client.get(format!("{url}?limit=20"))
        };
        let res = req
            .bearer_auth(token)
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("{}", res.status());
        }
        let body: Value = res.json().await?;
        let prefix = format!("{slug}-");
        let names: Vec<&str> = if write {
            vec![body["name"].as_str().unwrap_or("")]
        } else {
            body["items"]
                .as_array()
                .map(|a| a.iter().map(|p| p["name"].as_str().unwrap_or("")).collect())
                .unwrap_or_default()
        };
        Ok(names.iter().any(|n| !n.starts_with(&prefix)))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Latencies (µs) and outcomes of a run.
#[derive(Default)]
struct Tally {
    latencies: std::sync::Mutex<Vec<u32>>,
    ok: AtomicU64,
    errors: AtomicU64,
    leaks: AtomicU64,
    limited: AtomicU64,
    /// What the errors were (status or transport error), counted.
    kinds: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Tally {
    fn add(&self, took: Duration, outcome: &Result<bool>) {
        match outcome {
            Ok(leak) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                if *leak {
                    self.leaks.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) if e.to_string().starts_with("429") => {
                self.limited.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let kind: String = e.to_string().chars().take(80).collect();
                *self
                    .kinds
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(kind)
                    .or_default() += 1;
            }
        }
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(us);
    }

    /// The `q` quantile of the latencies, in ms.
    fn quantile_ms(&self, q: f64) -> f64 {
        let mut l = self
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if l.is_empty() {
            return 0.0;
        }
        l.sort_unstable();
        let i = ((l.len() - 1) as f64 * q).round() as usize;
        f64::from(l[i]) / 1000.0
    }

    fn count(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
            + self.errors.load(Ordering::Relaxed)
            + self.limited.load(Ordering::Relaxed)
    }
}

/// `clients` closed-loop clients over `tenants` for `run`; the mix is one write in five.
async fn closed_loop(
    app: &Arc<App>,
    tenants: &Arc<Vec<(String, String)>>,
    clients: usize,
    run: Duration,
    tally: &Arc<Tally>,
) {
    let end = Instant::now() + run;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (app, tenants, tally) = (app.clone(), tenants.clone(), tally.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < end {
                    let (slug, token) = &tenants[(c + n as usize * 7) % tenants.len()];
                    let start = Instant::now();
                    let outcome = app
                        .request(slug, token, n.is_multiple_of(5), 1_000 + n)
                        .await;
                    tally.add(start.elapsed(), &outcome);
                    n += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

async fn sustained(args: &Args, strategy: Strategy) -> Result<Value> {
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

/// One neighbours run: a hot tenant read by 16 clients as fast as they go, 50 others read at
/// 2 a second each, for `seconds`; with the demo's per-tenant rate `limit` when given.
async fn neighbours_run(args: &Args, strategy: Strategy, limit: Option<u32>) -> Result<Value> {
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

fn write(args: &Args, name: &str, what: &str, columns: Value, rows: Vec<Value>) -> Result<()> {
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

fn main() -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--serve") {
        return runtime.block_on(serve(&argv[2], &argv[3]));
    }
    let args = args()?;
    runtime.block_on(async {
        let mut rows = Vec::new();
        if args.mode == "neighbours" {
            for &s in &args.strategies {
                rows.push(neighbours_run(&args, s, None).await?);
                rows.push(neighbours_run(&args, s, Some(args.rate)).await?);
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
                rows.push(sustained(&args, s).await?);
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
