//! Placements and moves through the app: `--strategy hybrid` places tenants where the admin
//! asks, moves one live over HTTP (202, a job to poll) while a client keeps writing and
//! reading (every answer 2xx, or 503 with `Retry-After` during the copy); another strategy
//! refuses a move. And the CLI's per-tenant export and import, run as a user would.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tenancy_core::Strategy;

use crate::helpers::{ADMIN, spawn_app};

/// A tenant moved over HTTP under a client's writes and reads, in two directions.
#[cfg(feature = "hybrid")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_moves_a_live_tenant_over_http() -> Result<()> {
    let app = spawn_app(Strategy::Hybrid).await?;
    let token = app.tenant_with_owner("mover").await?;
    let placed = app
        .admin_post(
            "/admin/tenants",
            json!({"slug": "globex", "name": "Globex", "placement": "schema"}),
        )
        .await?;
    ensure!(
        placed.status() == StatusCode::CREATED,
        "{}",
        placed.status()
    );
    let body: Value = placed.json().await?;
    ensure!(body["placement"]["kind"] == "schema", "{body}");
    let bad = app
        .admin_post(
            "/admin/tenants",
            json!({"slug": "initech", "name": "x", "placement": "hybrid"}),
        )
        .await?;
    ensure!(
        bad.status() == StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad.status()
    );
    for i in 0..20 {
        app.project("mover", &token, &format!("seed-{i}")).await?;
    }
    let mut report = Vec::new();
    for (to, kind) in [("database", "database"), ("shared", "shared")] {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = {
            let (client, base, token, stop) =
                (app.client.clone(), app.url(""), token.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut acked, mut refused, mut i) = (Vec::new(), 0u32, 0u32);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let name = format!("{to}-{i}");
                    let res = client
                        .post(format!("{base}/t/mover/api/projects"))
                        .bearer_auth(&token)
                        .json(&json!({"name": name}))
                        .send()
                        .await?;
                    match res.status() {
                        StatusCode::CREATED => {
                            acked.push(name);
                            i += 1;
                        }
                        StatusCode::SERVICE_UNAVAILABLE => {
                            ensure!(
                                res.headers().contains_key("retry-after"),
                                "503 without Retry-After"
                            );
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        other => anyhow::bail!("write {name}: {other}"),
                    }
                    let read = client
                        .get(format!("{base}/t/mover/api/projects?limit=10"))
                        .bearer_auth(&token)
                        .send()
                        .await?;
                    ensure!(read.status() == StatusCode::OK, "read: {}", read.status());
                }
                Ok::<_, anyhow::Error>((acked, refused))
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let res = app
            .admin_post("/admin/tenants/mover/move", json!({"to": to}))
            .await?;
        ensure!(
            res.status() == StatusCode::ACCEPTED,
            "move: {}",
            res.status()
        );
        let location = res
            .headers()
            .get("location")
            .context("Location")?
            .to_str()?
            .to_owned();
        let started = Instant::now();
        let job = loop {
            let job: Value = app
                .client
                .get(app.url(&location))
                .bearer_auth(ADMIN)
                .send()
                .await?
                .json()
                .await?;
            if !job["finished_at"].is_null() {
                break job;
            }
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the move did not finish: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        ensure!(job["step"] == "done", "{job}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (acked, refused) = client.await??;
        let tenant: Value = app
            .client
            .get(app.url("/admin/tenants/mover"))
            .bearer_auth(ADMIN)
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            tenant["placement"]["kind"] == kind && tenant["state"] == "ready",
            "{tenant}"
        );
        let names = all_project_names(&app, "mover", &token).await?;
        let lost: Vec<_> = acked.iter().filter(|n| !names.contains(n)).collect();
        ensure!(
            lost.is_empty(),
            "to {to}: acknowledged projects lost: {lost:?}"
        );
        ensure!(names.iter().filter(|n| n.starts_with("seed-")).count() == 20);
        report.push(json!({
            "to": to, "acknowledged": acked.len(), "acknowledged_found": acked.len() - lost.len(),
            "refused_503": refused, "move_ms": started.elapsed().as_millis(),
        }));
    }
    tenancy_testkit::fault_report("hybrid_move_over_http", &json!({ "moves": report }))?;
    app.finish().await
}

/// A tenant's placement as the API reads it (`placement.kind`) is what it takes back: sent to
/// create another tenant there, and to move a third one there.
#[cfg(feature = "hybrid")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_read_from_the_api_is_sent_back() -> Result<()> {
    let app = spawn_app(Strategy::Hybrid).await?;
    let get = |slug: &'static str| {
        let req = app
            .client
            .get(app.url(&format!("/admin/tenants/{slug}")))
            .bearer_auth(ADMIN);
        async move { Ok::<Value, anyhow::Error>(req.send().await?.json().await?) }
    };
    let made = app
        .admin_post(
            "/admin/tenants",
            json!({"slug": "source", "name": "Source", "placement": "database"}),
        )
        .await?;
    ensure!(made.status() == StatusCode::CREATED, "{}", made.status());
    let read = get("source").await?["placement"]["kind"].clone();
    ensure!(read == "database", "{read}");

    let created = app
        .admin_post(
            "/admin/tenants",
            json!({"slug": "beside", "name": "Beside", "placement": read}),
        )
        .await?;
    ensure!(
        created.status() == StatusCode::CREATED,
        "{}",
        created.status()
    );
    ensure!(get("beside").await?["placement"]["kind"] == read);

    let mover = app
        .admin_post(
            "/admin/tenants",
            json!({"slug": "follower", "name": "Follower", "placement": "shared"}),
        )
        .await?;
    ensure!(mover.status() == StatusCode::CREATED, "{}", mover.status());
    let res = app
        .admin_post("/admin/tenants/follower/move", json!({"to": read}))
        .await?;
    ensure!(
        res.status() == StatusCode::ACCEPTED,
        "move: {}",
        res.status()
    );
    let job: Value = res.json().await?;
    finished(&app, &job).await?;
    ensure!(get("follower").await?["placement"]["kind"] == read);
    app.finish().await
}

/// A move to where the tenant already is conflicts with its state (409); while a move runs in
/// the process, another is refused with 429 and `Retry-After` (a move holds catalog
/// connections, and unbounded moves starved the pool into 503s under schemathesis).
#[cfg(feature = "hybrid")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_in_one_process_go_one_at_a_time() -> Result<()> {
    let app = spawn_app(Strategy::Hybrid).await?;
    for slug in ["first", "second"] {
        let res = app
            .admin_post(
                "/admin/tenants",
                json!({"slug": slug, "name": slug, "placement": "shared"}),
            )
            .await?;
        ensure!(res.status() == StatusCode::CREATED, "{}", res.status());
    }
    let here = app
        .admin_post("/admin/tenants/first/move", json!({"to": "shared"}))
        .await?;
    crate::helpers::problem(here, StatusCode::CONFLICT).await?;
    let started = app
        .admin_post("/admin/tenants/first/move", json!({"to": "schema"}))
        .await?;
    ensure!(
        started.status() == StatusCode::ACCEPTED,
        "{}",
        started.status()
    );
    let job: Value = started.json().await?;
    // The move keeps its source for the drain (2 s by default): it is still running.
    let busy = app
        .admin_post("/admin/tenants/second/move", json!({"to": "schema"}))
        .await?;
    ensure!(
        busy.headers().get("retry-after").is_some(),
        "no Retry-After on {}",
        busy.status()
    );
    crate::helpers::problem(busy, StatusCode::TOO_MANY_REQUESTS).await?;
    finished(&app, &job).await?;
    // The permit goes with the move's task: the next move is taken once it has ended.
    let mut accepted = false;
    for _ in 0..40 {
        let res = app
            .admin_post("/admin/tenants/second/move", json!({"to": "schema"}))
            .await?;
        if res.status() == StatusCode::ACCEPTED {
            accepted = true;
            break;
        }
        ensure!(
            res.status() == StatusCode::TOO_MANY_REQUESTS,
            "{}",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(accepted, "the second move was never taken");
    app.finish().await
}

/// Waits, at most a minute, for the job `job` (as a move's 202 returned it) to end, and
/// checks that it ended done.
#[cfg(any(feature = "hybrid", feature = "separate-schema"))]
async fn finished(app: &crate::helpers::TestApp, job: &Value) -> Result<()> {
    let id = job["id"].as_str().context("job id")?;
    let started = Instant::now();
    loop {
        let job: Value = app
            .client
            .get(app.url(&format!("/admin/jobs/{id}")))
            .bearer_auth(ADMIN)
            .send()
            .await?
            .json()
            .await?;
        if !job["finished_at"].is_null() {
            ensure!(job["step"] == "done", "{job}");
            return Ok(());
        }
        ensure!(started.elapsed() < Duration::from_secs(60), "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every project name of `slug`, page after page.
#[cfg(feature = "hybrid")]
async fn all_project_names(
    app: &crate::helpers::TestApp,
    slug: &str,
    token: &str,
) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut after = String::new();
    loop {
        let res = app
            .tenant(
                reqwest::Method::GET,
                slug,
                &format!("/projects?limit=500{after}"),
                token,
            )
            .send()
            .await?;
        ensure!(res.status() == StatusCode::OK, "list: {}", res.status());
        let body: Value = res.json().await?;
        names.extend(
            body["items"]
                .as_array()
                .context("items")?
                .iter()
                .filter_map(|p| p["name"].as_str().map(str::to_owned)),
        );
        match body["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return Ok(names),
        }
    }
}

crate::per_strategy!(
    a_single_strategy_moves_nothing,
    the_cli_exports_and_imports_a_tenant
);

/// Without the hybrid strategy a move is refused (409) and nothing changes.
async fn a_single_strategy_moves_nothing(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    app.tenant_with_owner("mover").await?;
    let res = app
        .admin_post("/admin/tenants/mover/move", json!({"to": "database"}))
        .await?;
    ensure!(res.status() == StatusCode::CONFLICT, "{}", res.status());
    let unknown = app
        .admin_post("/admin/tenants/mover/move", json!({"to": "the-moon"}))
        .await?;
    ensure!(
        unknown.status() == StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.status()
    );
    let missing = app
        .admin_post("/admin/tenants/nobody/move", json!({"to": "database"}))
        .await?;
    ensure!(
        missing.status() == StatusCode::NOT_FOUND,
        "{}",
        missing.status()
    );
    app.finish().await
}

/// The CLI, as a user runs it: `tenants export` writes a file, `tenants import --slug`
/// restores it into a new tenant with the same projects; a corrupted or cut file is refused
/// with a clear message and creates nothing.
async fn the_cli_exports_and_imports_a_tenant(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let token = app.tenant_with_owner("mover").await?;
    for i in 0..5 {
        app.project("mover", &token, &format!("p{i}")).await?;
    }
    let url = app.db.as_ref().context("database")?.url().to_owned();
    let dir = std::env::temp_dir().join(format!("tenancy-cli-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tenancy-demo"))
            .args(["--strategy", strategy.as_str()])
            .args(args)
            .env("DATABASE_URL", &url)
            .env("TENANCY__DATA_DIR", dir.join("data"))
            .output()
    };
    let file = dir.join("mover.tenancy");
    let out = cli(&[
        "tenants",
        "export",
        "mover",
        "--out",
        file.to_str().context("path")?,
    ])?;
    ensure!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(manifest["tables"][0]["rows"] == 5, "{manifest}");

    let mut bytes = std::fs::read(&file)?;
    let cut = dir.join("cut.tenancy");
    std::fs::write(&cut, &bytes[..bytes.len() / 2])?;
    let at = bytes.len() / 3;
    bytes[at] ^= 0x20;
    let corrupt = dir.join("corrupt.tenancy");
    std::fs::write(&corrupt, &bytes)?;
    for (bad, says) in [(&cut, "truncated"), (&corrupt, "export refused")] {
        let out = cli(&[
            "tenants",
            "import",
            bad.to_str().context("path")?,
            "--slug",
            "mover-copy",
        ])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && stderr.contains(says),
            "{}: {stderr}",
            bad.display()
        );
    }
    ensure!(
        !app.tenant_slugs().await?.contains(&"mover-copy".to_owned()),
        "a refused import created a tenant"
    );

    let out = cli(&[
        "tenants",
        "import",
        file.to_str().context("path")?,
        "--slug",
        "mover-copy",
    ])?;
    ensure!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = cli(&[
        "tenants",
        "import",
        file.to_str().context("path")?,
        "--slug",
        "mover-copy",
    ])?;
    ensure!(
        !again.status.success(),
        "a second import into the same slug was accepted"
    );
    let copy_token = {
        let user = app.user("reader@example.com").await?;
        app.grant("mover-copy", &user, "owner").await?;
        app.token(&user).await?
    };
    let mut names = app.project_names("mover-copy", &copy_token).await?;
    names.sort();
    ensure!(names == ["p0", "p1", "p2", "p3", "p4"], "{names:?}");
    std::fs::remove_dir_all(&dir).ok();
    app.finish().await
}

/// The worker that holds schema `schema`'s `projects`, from Citus' own tables.
#[cfg(feature = "separate-schema")]
async fn node_of_schema(
    admin: &tenancy_core::sea_orm::DatabaseConnection,
    schema: &str,
) -> Result<String> {
    use tenancy_core::sea_orm::ConnectionTrait;
    let row = admin
        .query_one_raw(tenancy_core::plumbing::sql::stmt(
            "SELECT nodename || ':' || nodeport AS node FROM citus_shards \
             WHERE table_name = to_regclass(quote_ident($1) || '.projects')",
            [schema.into()],
        ))
        .await?
        .context("no shard holds the schema")?;
    Ok(row.try_get("", "node")?)
}

/// On a Citus cluster: a tenant moved to the other worker through the API (202, a job that
/// ends done) and back through the CLI's `tenants move --node` (its steps reported, then
/// `moved`), its projects all there after each; `--to` and `--node` together are refused.
#[cfg(feature = "separate-schema")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_moves_between_citus_workers_through_the_api_and_the_cli() -> Result<()> {
    use tenancy_testkit::{DatabaseOn, TestDatabase};
    let db = TestDatabase::create_on(DatabaseOn::Citus).await?;
    let app = crate::helpers::spawn_on(Strategy::SeparateSchema, db.url()).await?;
    let token = app.tenant_with_owner("mover").await?;
    for i in 0..5 {
        app.project("mover", &token, &format!("p{i}")).await?;
    }
    let admin = tenancy_core::sea_orm::Database::connect(db.url()).await?;
    let schema = "tenant_mover";
    let first = node_of_schema(&admin, schema).await?;
    let workers = tenancy_core::plumbing::citus::workers(&admin).await?;
    let other = workers
        .iter()
        .map(ToString::to_string)
        .find(|w| *w != first)
        .context("a second worker")?;

    let res = app
        .admin_post("/admin/tenants/mover/move", json!({"node": other}))
        .await?;
    ensure!(res.status() == StatusCode::ACCEPTED, "{}", res.status());
    finished(&app, &res.json().await?).await?;
    ensure!(node_of_schema(&admin, schema).await? == other, "not moved");
    let mut names = app.project_names("mover", &token).await?;
    names.sort();
    ensure!(names == ["p0", "p1", "p2", "p3", "p4"], "{names:?}");

    let dir = std::env::temp_dir().join(format!("tenancy-cli-{}", uuid::Uuid::now_v7()));
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tenancy-demo"))
            .args(["--strategy", "separate-schema", "tenants", "move", "mover"])
            .args(args)
            .env("DATABASE_URL", db.url())
            .env("TENANCY__DATA_DIR", dir.join("data"))
            .output()
    };
    let both = cli(&["--to", "shared", "--node", &first])?;
    ensure!(
        !both.status.success() && String::from_utf8_lossy(&both.stderr).contains("--node"),
        "--to with --node: {}",
        String::from_utf8_lossy(&both.stderr)
    );
    let back = cli(&["--node", &first])?;
    let said = String::from_utf8_lossy(&back.stderr);
    ensure!(back.status.success(), "move --node: {said}");
    ensure!(
        said.contains("mover: started") && said.contains(&format!("moved mover to node {first}")),
        "the CLI did not report the steps: {said}"
    );
    ensure!(
        node_of_schema(&admin, schema).await? == first,
        "not moved back"
    );
    let mut names = app.project_names("mover", &token).await?;
    names.sort();
    ensure!(names == ["p0", "p1", "p2", "p3", "p4"], "{names:?}");
    admin.close().await.ok();
    std::fs::remove_dir_all(&dir).ok();
    app.finish().await?;
    db.drop_database().await
}
