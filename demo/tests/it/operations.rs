//! Health, readiness, metrics, the API description; an outage: 503, then recovery; and a
//! catalog row the library cannot read: 500, with the cause in the log.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tenancy_core::Strategy;
use tenancy_testkit::TestServer;

use crate::helpers::{problem, spawn_app, spawn_on};

crate::per_strategy!(
    operations_endpoints,
    database_outage_is_503_then_recovers,
    an_unreadable_catalog_row_is_a_500_with_its_cause_in_the_log
);

async fn operations_endpoints(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let first = app.first_run.clone().context("sample data")?;
    for _ in 0..3 {
        let res = app
            .tenant(Method::GET, &first.tenant, "/projects", &first.token)
            .send()
            .await?;
        ensure!(res.status() == StatusCode::OK);
    }
    ensure!(app.client.get(app.url("/healthz")).send().await?.status() == StatusCode::OK);
    ensure!(app.client.get(app.url("/readyz")).send().await?.status() == StatusCode::OK);
    let metrics = app.metrics().await?;
    let wanted = format!(
        "http_requests_total{{route=\"/t/{{tenant}}/api/projects\",status=\"200\",strategy=\"{strategy}\"}} 3"
    );
    ensure!(metrics.contains(&wanted), "no {wanted} in\n{metrics}");
    ensure!(
        metrics.contains("db_store_pool_connections{state=\"open\"}"),
        "the store's pool is reported:\n{metrics}"
    );
    ensure!(
        metrics.contains("tenant_cache_lookups_total{result=\"hit\"} 2"),
        "two of three lookups hit the cache:\n{metrics}"
    );
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await?
        .json()
        .await?;
    for path in [
        "/api/projects",
        "/api/tasks/{id}",
        "/admin/tenants",
        "/admin/migrate",
    ] {
        ensure!(
            !doc["paths"][path].is_null(),
            "{path} missing from the OpenAPI document"
        );
    }
    // Every reference names a schema the document has (Project and Task are the entities'
    // models, named by `schema(as = ...)`).
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in &refs {
        let name = r.trim_start_matches("#/components/schemas/");
        ensure!(
            !doc["components"]["schemas"][name].is_null(),
            "{r} points at no schema"
        );
    }
    for name in ["Project", "Task"] {
        ensure!(
            !doc["components"]["schemas"][name]["properties"]["created_at"].is_null(),
            "schema {name} is missing or has no created_at"
        );
    }
    // Swagger UI, served from the binary: nothing loaded from elsewhere, the document ours.
    let page = app
        .client
        .get(app.url("/docs/"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        page.contains("swagger-ui")
            && !page.contains("src=\"http")
            && !page.contains("href=\"http"),
        "the page loads nothing from elsewhere: {page}"
    );
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(init.contains("/openapi.json"), "{init}");
    let res = app.client.get(app.url("/nowhere")).send().await?;
    problem(res, StatusCode::NOT_FOUND).await?;
    let res = app.client.post(app.url("/healthz")).send().await?;
    problem(res, StatusCode::METHOD_NOT_ALLOWED).await?;
    app.finish().await
}

/// The database goes away: 503 with Retry-After, readiness fails; it comes back: the same
/// process serves again.
async fn database_outage_is_503_then_recovers(strategy: Strategy) -> Result<()> {
    let server = TestServer::start()?;
    let app = spawn_on(strategy, &server.url("postgres")).await?;
    let first = app.first_run.clone().context("sample data")?;
    let get = || {
        app.tenant(Method::GET, &first.tenant, "/projects", &first.token)
            .send()
    };
    ensure!(get().await?.status() == StatusCode::OK);

    server.stop()?;
    let res = get().await?;
    let retry = res.headers().get("retry-after").cloned();
    problem(res, StatusCode::SERVICE_UNAVAILABLE).await?;
    ensure!(retry.is_some(), "503 carries Retry-After");
    let res = app.client.get(app.url("/readyz")).send().await?;
    problem(res, StatusCode::SERVICE_UNAVAILABLE).await?;

    server.start_again()?;
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = get().await?.status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(status == StatusCode::OK, "after the restart: {status}");
    app.finish().await?;
    server.remove()
}

/// Every `$ref` string in an OpenAPI document.
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// A tenant's catalog row made unreadable behind the app's back (a placement no version of
/// the library wrote): asking for the tenant is the library's broken state, not the caller's
/// conflict, so the answer is 500 (not 409) and the log names the row and what is wrong.
async fn an_unreadable_catalog_row_is_a_500_with_its_cause_in_the_log(
    strategy: Strategy,
) -> Result<()> {
    let logs = crate::helpers::logs();
    let app = spawn_app(strategy).await?;
    let res = app
        .admin_post(
            "/admin/tenants",
            serde_json::json!({"slug": "unreadable", "name": "Unreadable"}),
        )
        .await?;
    let created: Value = res.json().await?;
    let id = created["id"]
        .as_str()
        .context("the new tenant's id")?
        .to_owned();
    let db = tenancy_core::sea_orm::Database::connect(
        app.db.as_ref().context("the test's database")?.url(),
    )
    .await?;
    use tenancy_core::sea_orm::ConnectionTrait;
    db.execute_unprepared(
        "UPDATE tenancy.tenants SET placement = '{\"kind\": \"nowhere\"}' \
         WHERE slug = 'unreadable'",
    )
    .await?;
    db.close().await.ok();
    let res = app
        .client
        .get(app.url("/admin/tenants/unreadable"))
        .bearer_auth(crate::helpers::ADMIN)
        .send()
        .await?;
    let body = problem(res, StatusCode::INTERNAL_SERVER_ERROR).await?;
    ensure!(
        !body.to_string().contains("nowhere"),
        "the cause stays in the log, not in the answer: {body}"
    );
    ensure!(
        logs.has_line_with(&[
            "internal error",
            &format!("catalog row {id} has an invalid placement")
        ]),
        "the log names the row and what is wrong with it"
    );
    app.finish().await
}
