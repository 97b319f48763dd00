//! Faults under load, through the real app: the database stopped and started again while
//! reads and writes run over many tenants, and the store's backends terminated in the middle
//! of a transaction. Each test prints its counts and writes them to
//! `target/fault-reports/<test>-<strategy>.json`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenancy_core::Strategy;
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::{ConnectionTrait, Database, TransactionTrait};
use tenancy_testkit::TestServer;

use crate::helpers::{TestApp, problem, spawn_app, spawn_with, tenant_table};

crate::per_strategy!(
    restart_under_load_is_503_then_every_request_succeeds,
    backends_terminated_mid_transaction
);

fn report(test: &str, strategy: Strategy, counts: &Value) -> Result<()> {
    tenancy_testkit::fault_report(&format!("{test}-{strategy}"), counts)
}

const BEFORE: u8 = 0;
const DOWN: u8 = 1;
const RESTARTING: u8 = 2;
/// The first second after the server answers again: the `Retry-After` the 503s gave.
const RECOVERING: u8 = 3;
const AFTER: u8 = 4;
const STOP: u8 = 5;
const PHASES: [&str; 6] = [
    "before",
    "down",
    "restarting",
    "first second",
    "after",
    "stop",
];

/// One request of the load and what came of it.
#[derive(Debug)]
struct Outcome {
    /// The phase when it was sent and when its answer came.
    sent: u8,
    done: u8,
    /// 0 when no answer came (the client gave up).
    status: u16,
    retry_after: bool,
    elapsed: Duration,
    /// A project write: the tenant's index and the project's name.
    write: Option<(usize, String)>,
}

/// The acquire timeout the app runs with, and how long the client waits for any answer.
const ACQUIRE: Duration = Duration::from_secs(1);
const ANSWER_WITHIN: Duration = Duration::from_millis(2000);

async fn load_worker(
    app: Arc<TestApp>,
    tenants: Arc<Vec<(String, String)>>,
    phase: Arc<AtomicU8>,
    worker: usize,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    let mut i = 0usize;
    loop {
        let sent = phase.load(Ordering::Acquire);
        if sent == STOP {
            return out;
        }
        let t = (worker + i) % tenants.len();
        let (slug, token) = &tenants[t];
        let write = i.is_multiple_of(2);
        let name = format!("w{worker}-{i}");
        let req = if write {
            app.tenant(Method::POST, slug, "/projects", token)
                .json(&json!({ "name": name }))
        } else {
            app.tenant(Method::GET, slug, "/projects?limit=5", token)
        };
        let start = Instant::now();
        let res = req.timeout(ANSWER_WITHIN).send().await;
        let (status, retry_after) = match &res {
            Ok(r) => (r.status().as_u16(), r.headers().contains_key("retry-after")),
            Err(_) => (0, false),
        };
        out.push(Outcome {
            sent,
            done: phase.load(Ordering::Acquire),
            status,
            retry_after,
            elapsed: start.elapsed(),
            write: write.then_some((t, name)),
        });
        i += 1;
    }
}

/// Every project name of a tenant, page by page.
async fn all_project_names(app: &TestApp, slug: &str, token: &str) -> Result<HashSet<String>> {
    let mut names = HashSet::new();
    let mut after = String::new();
    loop {
        let path = format!("/projects?limit=500{after}");
        let res = app.tenant(Method::GET, slug, &path, token).send().await?;
        ensure!(res.status() == StatusCode::OK, "list: {}", res.status());
        let page: Value = res.json().await?;
        for p in page["items"].as_array().context("items")? {
            names.insert(p["name"].as_str().context("name")?.to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return Ok(names),
        }
    }
}

/// PostgreSQL stopped (fast shutdown: every connection cut) and started again while four
/// clients read and write over ten tenants. While it is down every request answers 503 with
/// Retry-After, none waits past the acquire timeout; from the Retry-After (one second) after
/// it answers again every request succeeds, with no restart of the app; every acknowledged write is there and no refused one is.
async fn restart_under_load_is_503_then_every_request_succeeds(strategy: Strategy) -> Result<()> {
    crate::helpers::logs();
    let server = TestServer::start()?;
    let app = spawn_with(strategy, &server.url("postgres"), |s| {
        s.acquire_timeout_secs = ACQUIRE.as_secs();
    })
    .await?;
    let mut tenants = Vec::new();
    for i in 0..10 {
        let slug = format!("load-{i}");
        tenants.push((slug.clone(), app.tenant_with_owner(&slug).await?));
    }
    let app = Arc::new(app);
    let tenants = Arc::new(tenants);
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let workers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(load_worker(app.clone(), tenants.clone(), phase.clone(), w)))
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = Arc::new(server);
    let srv = s.clone();
    tokio::task::spawn_blocking(move || srv.stop()).await??;
    phase.store(DOWN, Ordering::Release);
    tokio::time::sleep(Duration::from_secs(4)).await;
    phase.store(RESTARTING, Ordering::Release);
    let srv = s.clone();
    tokio::task::spawn_blocking(move || srv.start_again()).await??;
    phase.store(RECOVERING, Ordering::Release);
    tokio::time::sleep(Duration::from_secs(1)).await;
    phase.store(AFTER, Ordering::Release);
    tokio::time::sleep(Duration::from_secs(3)).await;
    phase.store(STOP, Ordering::Release);
    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.extend(w.await?);
    }

    let mut histogram = std::collections::BTreeMap::new();
    for o in &outcomes {
        *histogram
            .entry(format!(
                "sent in {} answered in {}: {}",
                PHASES[usize::from(o.sent)],
                PHASES[usize::from(o.done)],
                o.status
            ))
            .or_insert(0usize) += 1;
    }
    let in_phase = |p: u8| outcomes.iter().filter(move |o| o.sent == p && o.done == p);
    let unanswered = outcomes.iter().filter(|o| o.status == 0).count();
    let odd: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status != 503 && !(200..300).contains(&o.status))
        .map(|o| o.status)
        .collect();
    let slowest = outcomes.iter().map(|o| o.elapsed).max().unwrap_or_default();
    let down: Vec<_> = in_phase(DOWN).collect();
    let recovering: Vec<_> = outcomes.iter().filter(|o| o.sent == RECOVERING).collect();
    let after: Vec<_> = outcomes.iter().filter(|o| o.sent == AFTER).collect();
    let failed_after = after
        .iter()
        .filter(|o| !(200..300).contains(&o.status))
        .count();

    // What the database holds now, read through the app, against what it acknowledged.
    let mut acknowledged = 0;
    let mut refused = 0;
    let mut found_acknowledged = 0;
    let mut found_refused = 0;
    for (t, (slug, token)) in tenants.iter().enumerate() {
        let names = all_project_names(&app, slug, token).await?;
        for o in outcomes
            .iter()
            .filter(|o| o.write.as_ref().is_some_and(|w| w.0 == t))
        {
            let name = &o.write.as_ref().context("a write")?.1;
            if (200..300).contains(&o.status) {
                acknowledged += 1;
                found_acknowledged += usize::from(names.contains(name));
            } else {
                refused += 1;
                found_refused += usize::from(names.contains(name));
            }
        }
    }
    report(
        "restart_under_load",
        strategy,
        &json!({
            "requests": outcomes.len(),
            "during_outage": down.len(),
            "during_outage_503": down.iter().filter(|o| o.status == 503).count(),
            "first_second_after_restart": recovering.len(),
            "first_second_failed": recovering.iter().filter(|o| o.status >= 300).count(),
            "after_restart": after.len(),
            "after_restart_failed": failed_after,
            "unanswered": unanswered,
            "other_statuses": odd,
            "slowest_ms": slowest.as_millis(),
            "by_phase": histogram,
            "writes_acknowledged": acknowledged,
            "acknowledged_found": found_acknowledged,
            "writes_refused": refused,
            "refused_found": found_refused,
        }),
    )?;

    ensure!(
        unanswered == 0,
        "{unanswered} requests got no answer within {ANSWER_WITHIN:?}"
    );
    ensure!(odd.is_empty(), "statuses other than 2xx and 503: {odd:?}");
    ensure!(
        outcomes.iter().all(|o| o.status != 503 || o.retry_after),
        "a 503 without Retry-After"
    );
    ensure!(
        !down.is_empty(),
        "no request was made while the server was down"
    );
    ensure!(
        down.iter().all(|o| o.status == 503),
        "a request sent and answered while the server was down did not get 503"
    );
    ensure!(
        after.len() >= 10,
        "only {} requests after the restart",
        after.len()
    );
    ensure!(
        failed_after == 0,
        "{failed_after} requests failed after the restart"
    );
    ensure!(
        acknowledged > 0 && refused > 0,
        "the load wrote in both phases"
    );
    ensure!(
        found_acknowledged == acknowledged,
        "{} acknowledged writes are missing",
        acknowledged - found_acknowledged
    );
    ensure!(
        found_refused == 0,
        "{found_refused} refused writes were stored"
    );
    let app = Arc::try_unwrap(app).map_err(|_| anyhow::anyhow!("the app is still shared"))?;
    app.finish().await?;
    Arc::try_unwrap(s)
        .map_err(|_| anyhow::anyhow!("the server is still shared"))?
        .remove()
}

/// A project with tasks is deleted (one statement that removes rows of two tables); while
/// the delete waits on a task row the test holds locked, every backend of the tenant's
/// database is terminated. The request fails cleanly (503), nothing of the delete is kept,
/// and the next requests succeed, the tenant's and a neighbour's alike.
async fn backends_terminated_mid_transaction(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let token = app.tenant_with_owner("victim").await?;
    let neighbour = app.tenant_with_owner("neighbour").await?;
    let project = app.project("victim", &token, "doomed").await?;
    for title in ["one", "two", "three"] {
        let res = app
            .tenant(
                Method::POST,
                "victim",
                &format!("/projects/{project}/tasks"),
                &token,
            )
            .json(&json!({ "title": title }))
            .send()
            .await?;
        ensure!(
            res.status() == StatusCode::CREATED,
            "task: {}",
            res.status()
        );
    }
    app.project("neighbour", &neighbour, "kept").await?;
    // Eight reads at once, so the store keeps several connections of the tenant idle: the
    // terminated ones include kept idle ones, not only the one in use.
    let reads = (0..8).map(|_| app.project_names("victim", &token));
    for read in futures::future::join_all(reads).await {
        read?;
    }

    let (url, table) = tenant_table(&app, "victim", "tasks").await?;
    // Two connections: the lock holder, and one for the queries below.
    let mut options = tenancy_core::sea_orm::ConnectOptions::new(url);
    options.max_connections(2).sqlx_logging(false);
    let db = Database::connect(options).await?;
    let lock = db.begin().await?;
    let holder = lock
        .query_one_raw(stmt("SELECT pg_backend_pid() AS pid", []))
        .await?
        .context("pid")?
        .try_get::<i32>("", "pid")?;
    let locked = lock
        .query_one_raw(stmt(
            &format!("SELECT id FROM {table} WHERE project_id = $1 LIMIT 1 FOR UPDATE"),
            [uuid::Uuid::parse_str(&project)?.into()],
        ))
        .await?;
    ensure!(locked.is_some(), "a task row to lock");

    let delete = app
        .tenant(
            Method::DELETE,
            "victim",
            &format!("/projects/{project}"),
            &token,
        )
        .timeout(Duration::from_secs(10))
        .send();
    let waiting = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let row = db
                .query_one_raw(stmt(
                    "SELECT count(*)::int8 AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    [],
                ))
                .await?
                .context("count")?;
            if row.try_get::<i64>("", "n")? > 0 {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "the delete never waited on the lock"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Every client of the database but the test's own two connections.
        let row = db
            .query_one_raw(stmt(
                "SELECT count(pg_terminate_backend(pid))::int8 AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND pid <> $1 AND backend_type = 'client backend'",
                [holder.into()],
            ))
            .await?
            .context("count")?;
        anyhow::Ok(row.try_get::<i64>("", "n")?)
    };
    let (res, terminated) = tokio::join!(delete, waiting);
    let terminated = terminated?;
    lock.rollback().await?;
    let res = res?;
    let status = res.status();
    problem(res, StatusCode::SERVICE_UNAVAILABLE).await?;

    let res = app
        .tenant(
            Method::GET,
            "victim",
            &format!("/projects/{project}/tasks"),
            &token,
        )
        .send()
        .await?;
    let first_after = res.status();
    let tasks: Value = res.json().await?;
    let tasks_kept = tasks["items"].as_array().map_or(0, Vec::len);
    // Then 24 requests, eight at a time, so that every connection the store kept is used.
    let mut next_failed = 0;
    for round in 0..3 {
        let batch = (0..8).map(|i| {
            let (app, token, neighbour) = (&app, &token, &neighbour);
            async move {
                match i % 3 {
                    0 => app
                        .project("victim", token, &format!("after-{round}-{i}"))
                        .await
                        .map(drop),
                    1 => app.project_names("victim", token).await.map(drop),
                    _ => app.project_names("neighbour", neighbour).await.map(drop),
                }
            }
        });
        let results = futures::future::join_all(batch).await;
        next_failed += results.iter().filter(|r| r.is_err()).count();
    }
    let neighbour_projects = app.project_names("neighbour", &neighbour).await?;
    report(
        "backends_terminated",
        strategy,
        &json!({
            "backends_terminated": terminated,
            "interrupted_request_status": status.as_u16(),
            "tasks_before": 3,
            "tasks_after": tasks_kept,
            "next_requests": 24,
            "next_requests_failed": next_failed,
            "neighbour_projects": neighbour_projects.len(),
        }),
    )?;
    ensure!(terminated >= 1, "no backend was terminated");
    ensure!(
        first_after == StatusCode::OK,
        "the project is still there: {first_after}"
    );
    ensure!(
        tasks_kept == 3,
        "all or nothing: {tasks_kept} of 3 tasks left"
    );
    ensure!(
        next_failed == 0,
        "{next_failed} of the next 24 requests failed"
    );
    ensure!(
        neighbour_projects == ["kept"],
        "the neighbour: {neighbour_projects:?}"
    );
    db.close().await?;
    app.finish().await
}
