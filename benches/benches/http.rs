//! Run with `cargo bench -p tenancy-benches --bench http`.
//!
//! The demo app in this process, per strategy, over loopback HTTP with keep-alive: GET one
//! task, POST one task, GET the summary, each through tenant resolution (path), the bearer
//! token and membership check, the JSON layer and the store. Beside them, `bare`: an actix
//! handler with no tenancy at all that runs the same SQL (the same domain function on plain
//! tables in a database of its own) and returns the same JSON. Eight requests in flight, 64
//! per iteration; throughput is what criterion reports. The summary runs before the inserts, so it
//! always reads the first run's one project and task.

use std::time::Duration;

use actix_web::{App, HttpServer, web};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use serde_json::{Value, json};
use tenancy_core::sea_orm::{DatabaseConnection, TransactionTrait};
use tenancy_core::{Strategy, TableNamespace, TenantId, TenantScope};
use tenancy_demo::startup::{Application, Backend};
use tenancy_example::projects::{self, NewProject};
use tenancy_example::tasks::{self, NewTask};
use tenancy_testkit::TestDatabase;
use uuid::Uuid;

const BATCH: usize = 64;
const IN_FLIGHT: usize = 8;

/// One server under test: where to send requests, with what token.
struct Target {
    name: &'static str,
    base: String,
    token: String,
    task: String,
    project: String,
}

async fn demo(strategy: Strategy, db: &TestDatabase) -> anyhow::Result<Target> {
    let mut settings = tenancy_demo::settings::Settings::load(None)?;
    // The load writes more than the shipped free plan allows into one tenant: the paid plan,
    // whose limits are still checked on every write.
    settings.default_plan = "pro".into();
    // One tenant as fast as criterion asks: the demo's per-tenant rate (200 a second) would
    // measure the rate, not the request.
    settings.rate_limit.per_tenant = 0;
    settings.http.port = 0;
    settings.database_url = Some(db.url().to_owned().into());
    let backend = Backend::open(strategy, db.url(), &settings).await?;
    let first = backend
        .first_run()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no first run on a fresh database"))?;
    let app = Application::build(&settings, &backend, "bench-admin")?;
    let base = format!("{}/t/{}/api", app.base_url(), first.tenant);
    tokio::spawn(app.run_until_stopped());
    let project = first_id(&format!("{base}/projects"), &first.token).await?;
    let task = first_id(&format!("{base}/projects/{project}/tasks"), &first.token).await?;
    Ok(Target {
        name: strategy.as_str(),
        base,
        token: first.token,
        task,
        project,
    })
}

/// The id of the first item of the page at `url`.
async fn first_id(url: &str, token: &str) -> anyhow::Result<String> {
    let page: Value = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    Ok(page["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn bare_task(
    db: web::Data<DatabaseConnection>,
    id: web::Path<Uuid>,
) -> actix_web::Result<web::Json<tasks::Task>> {
    // The same domain function on plain tables: the same SQL, no tenancy around it.
    let scope = TenantScope::autocommit(
        TenantId::from_uuid(Uuid::nil()),
        TableNamespace::Unqualified,
        db.get_ref().clone(),
    );
    tasks::get(&scope, id.into_inner())
        .await
        .map(web::Json)
        .map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))
}

async fn bare(db: &TestDatabase) -> anyhow::Result<Target> {
    let conn = tenancy_benches::plain_database(db).await?;
    let scope = TenantScope::in_transaction(
        TenantId::from_uuid(Uuid::nil()),
        TableNamespace::Unqualified,
        conn.begin().await?,
    );
    let project = projects::create(&scope, NewProject::named("Welcome")).await?;
    let task = tasks::create(&scope, project.id, NewTask::titled("Try")).await?;
    scope.commit().await?;
    let data = web::Data::new(conn);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/tasks/{id}", web::get().to(bare_task))
    })
    .bind(("127.0.0.1", 0))?
    .disable_signals();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    Ok(Target {
        name: "bare",
        base: format!("http://127.0.0.1:{port}"),
        token: String::new(),
        task: task.id.to_string(),
        project: project.id.to_string(),
    })
}

/// Sends `BATCH` requests, `IN_FLIGHT` at a time, and checks each status.
async fn batch(
    client: &reqwest::Client,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ok: u16,
) {
    futures::stream::iter(0..BATCH)
        .map(|_| {
            let req = make(client);
            async move {
                let res = req.send().await.expect("request");
                assert_eq!(res.status().as_u16(), ok, "unexpected status");
                res.bytes().await.expect("body");
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
}

fn http(c: &mut Criterion) {
    let rt = tenancy_benches::runtime();
    let setup = rt.block_on(async {
        let mut dbs = Vec::new();
        let mut targets = Vec::new();
        let db = TestDatabase::create().await?;
        targets.push(bare(&db).await?);
        dbs.push(db);
        for strategy in tenancy_benches::strategies() {
            let db = TestDatabase::create().await?;
            targets.push(demo(strategy, &db).await?);
            dbs.push(db);
        }
        anyhow::Ok((dbs, targets))
    });
    let (dbs, targets) =
        setup.unwrap_or_else(|e| panic!("bench set-up failed (is DATABASE_URL set?): {e:#}"));
    let client = reqwest::Client::new();

    let mut group = c.benchmark_group("http");
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .measurement_time(Duration::from_secs(5));
    for t in &targets {
        group.bench_function(BenchmarkId::new(format!("get_task/{}", t.name), 1), |b| {
            b.to_async(&rt).iter(|| {
                batch(
                    &client,
                    |c| {
                        c.get(format!("{}/tasks/{}", t.base, t.task))
                            .bearer_auth(&t.token)
                    },
                    200,
                )
            })
        });
    }
    for t in targets.iter().filter(|t| t.name != "bare") {
        group.bench_function(BenchmarkId::new(format!("summary/{}", t.name), 1), |b| {
            b.to_async(&rt).iter(|| {
                batch(
                    &client,
                    |c| c.get(format!("{}/summary", t.base)).bearer_auth(&t.token),
                    200,
                )
            })
        });
        group.bench_function(BenchmarkId::new(format!("post_task/{}", t.name), 1), |b| {
            b.to_async(&rt).iter(|| {
                batch(
                    &client,
                    |c| {
                        c.post(format!("{}/projects/{}/tasks", t.base, t.project))
                            .bearer_auth(&t.token)
                            .json(&json!({"title": "bench"}))
                    },
                    201,
                )
            })
        });
    }
    group.finish();
    rt.block_on(async {
        for db in dbs {
            db.drop_database().await.ok();
        }
    });
}

criterion_group!(benches, http);
criterion_main!(benches);
