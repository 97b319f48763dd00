//! Bad input gets a clear status and writes nothing.

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tenancy_core::Strategy;

use crate::helpers::{problem, spawn_app};

crate::per_strategy!(bad_input_is_refused_and_writes_nothing);

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
