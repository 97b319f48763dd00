//! Bad input gets a clear status and writes nothing.

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tenancy_core::Strategy;

use crate::helpers::{problem, spawn_app};

crate::per_strategy!(
    bad_input_is_refused_and_writes_nothing,
    a_refused_body_leaves_no_transaction_open
);

async fn bad_input_is_refused_and_writes_nothing(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let token = app.tenant_with_owner("globex").await?;
    let p = app.project("globex", &token, "Keep").await?;
    let projects_before = app.project_names("globex", &token).await?;
    let tenants_before = app.tenant_slugs().await?;
    let users_before = count(&app, "SELECT count(*) AS n FROM tenancy.users").await?;
    let post = |path: &str| app.tenant(Method::POST, "globex", path, &token);

    let malformed = post("/projects")
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await?;
    problem(malformed, StatusCode::BAD_REQUEST).await?;
    let empty = post("/projects").json(&json!({"name": ""})).send().await?;
    problem(empty, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let unknown_field = post("/projects")
        .json(&json!({"name": "x", "tenant_id": "00000000-0000-0000-0000-000000000000"}))
        .send()
        .await?;
    problem(unknown_field, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let wrong_type = post("/projects").json(&json!({"name": 42})).send().await?;
    problem(wrong_type, StatusCode::UNPROCESSABLE_ENTITY).await?;
    // A NUL character (schemathesis found these 500s): 422 everywhere text is taken.
    let nul = post("/projects")
        .json(&json!({"name": "a\u{0}b"}))
        .send()
        .await?;
    problem(nul, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let nul = post("/projects")
        .json(&json!({"name": "ok", "description": "\u{0}"}))
        .send()
        .await?;
    problem(nul, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let nul = post(&format!("/projects/{p}/tasks"))
        .json(&json!({"title": "\u{0}"}))
        .send()
        .await?;
    problem(nul, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let nul = app
        .admin_post("/admin/users", json!({"email": "a@b\u{0}", "name": "x"}))
        .await?;
    problem(nul, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let nul = app
        .admin_post("/admin/tenants", json!({"slug": "nul", "name": "a\u{0}"}))
        .await?;
    problem(nul, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let long_title = post(&format!("/projects/{p}/tasks"))
        .json(&json!({"title": "x".repeat(10_000)}))
        .send()
        .await?;
    problem(long_title, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let too_big = post("/projects")
        .json(&json!({"name": "x", "description": "y".repeat(100_000)}))
        .send()
        .await?;
    problem(too_big, StatusCode::PAYLOAD_TOO_LARGE).await?;
    let bad_limit = app
        .tenant(Method::GET, "globex", "/projects?limit=0", &token)
        .send()
        .await?;
    problem(bad_limit, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let bad_id = app
        .tenant(Method::GET, "globex", "/projects/not-a-uuid", &token)
        .send()
        .await?;
    problem(bad_id, StatusCode::NOT_FOUND).await?;
    for slug in ["Bad Slug", "pg_catalog", "-x", ""] {
        let res = app
            .admin_post("/admin/tenants", json!({"slug": slug, "name": "x"}))
            .await?;
        problem(res, StatusCode::UNPROCESSABLE_ENTITY).await?;
    }
    let bad_email = app
        .admin_post("/admin/users", json!({"email": "nope", "name": "x"}))
        .await?;
    problem(bad_email, StatusCode::UNPROCESSABLE_ENTITY).await?;

    let tasks: serde_json::Value = app
        .tenant(
            Method::GET,
            "globex",
            &format!("/projects/{p}/tasks"),
            &token,
        )
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        tasks["items"].as_array().is_some_and(Vec::is_empty),
        "{tasks}"
    );
    ensure!(app.project_names("globex", &token).await? == projects_before);
    ensure!(app.tenant_slugs().await? == tenants_before);
    ensure!(count(&app, "SELECT count(*) AS n FROM tenancy.users").await? == users_before);
    let wrong_method = app
        .client
        .put(app.url("/t/globex/api/projects"))
        .bearer_auth(&token)
        .send()
        .await?;
    problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await?;
    app.finish().await
}

/// actix-web extracts a handler's arguments together and drops the others when one fails:
/// a body refused while the scope was being bound must not leave a connection inside a
/// transaction (schemathesis's runs showed "there is already a transaction in progress" in
/// the server's log, and connections idle in a transaction).
async fn a_refused_body_leaves_no_transaction_open(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let token = app.tenant_with_owner("globex").await?;
    for i in 0..30 {
        let res = app
            .tenant(Method::POST, "globex", "/projects", &token)
            .json(&json!({"name": {}}))
            .send()
            .await?;
        ensure!(
            res.status() == StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            res.status()
        );
        if i % 3 == 0 {
            let res = app
                .tenant(Method::GET, "globex", "/summary", &token)
                .send()
                .await?;
            ensure!(res.status() == StatusCode::OK, "{}", res.status());
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let name = app
        .db
        .as_ref()
        .context("the test database")?
        .name()
        .to_owned();
    let open = count(
        &app,
        &format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' \
             AND (datname = '{name}' OR starts_with(datname, '{name}_'))"
        ),
    )
    .await?;
    ensure!(
        open == 0,
        "{open} connections were left inside a transaction"
    );
    app.project("globex", &token, "still fine").await?;
    app.finish().await
}

/// A count straight from the database, not through the app.
async fn count(app: &crate::helpers::TestApp, sql: &str) -> Result<i64> {
    use tenancy_core::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let db = app
        .db
        .as_ref()
        .context("the test database")?
        .admin()
        .await?;
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .context("a row")?;
    let n = row.try_get::<i64>("", "n")?;
    db.close().await.ok();
    Ok(n)
}
