//! Suspension through the HTTP API: a suspended tenant's routes answer 403 and write nothing,
//! its data stays (an export still works), other tenants are served, a static tenant cannot
//! be suspended, and resuming serves it again; a second process sees a suspension and a
//! resumption within a second.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenancy_core::{Slug, Strategy};
use tenancy_demo::strategy::StoreSettings;

use crate::helpers::{problem, spawn_app, spawn_app_with, spawn_on, until, with_statics};

crate::per_strategy!(
    a_suspended_tenant_is_served_nothing_and_keeps_its_data,
    suspension_reaches_every_process_within_a_second
);

async fn projects(app: &crate::helpers::TestApp, slug: &str, token: &str) -> Result<Value> {
    let res = app
        .tenant(Method::GET, slug, "/projects", token)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK, "{slug}: {}", res.status());
    Ok(res.json().await?)
}

async fn a_suspended_tenant_is_served_nothing_and_keeps_its_data(strategy: Strategy) -> Result<()> {
    let app = spawn_app_with(strategy, with_statics).await?;
    let token = app.tenant_with_owner("paused").await?;
    let other = app.tenant_with_owner("busy").await?;
    let res = app
        .tenant(Method::POST, "paused", "/projects", &token)
        .json(&json!({"name": "kept"}))
        .send()
        .await?;
    ensure!(res.status() == StatusCode::CREATED, "{}", res.status());

    let res = app
        .admin_post("/admin/tenants/paused/suspend", json!({}))
        .await?;
    ensure!(res.status() == StatusCode::OK, "suspend: {}", res.status());
    let view: Value = res.json().await?;
    ensure!(
        view["suspended_at"].is_string(),
        "the view says since when: {view}"
    );

    let read = app
        .tenant(Method::GET, "paused", "/projects", &token)
        .send()
        .await?;
    let body = problem(read, StatusCode::FORBIDDEN).await?;
    ensure!(body["type"] == "/problems/suspended", "{body}");
    let write = app
        .tenant(Method::POST, "paused", "/projects", &token)
        .json(&json!({"name": "refused"}))
        .send()
        .await?;
    problem(write, StatusCode::FORBIDDEN).await?;
    projects(&app, "busy", &other).await?;

    // The data stays, and a backup of it can still be taken.
    let db = app.db.as_ref().context("the test's database")?;
    let settings = crate::helpers::settings(strategy, db.url())?;
    let store =
        tenancy_demo::strategy::open(strategy, db.url(), &StoreSettings::from(&settings)).await?;
    let tenant = store.tenant_by_slug(&Slug::parse("paused")?).await?;
    ensure!(
        tenant.suspended_at.is_some(),
        "the catalog says it is suspended"
    );
    let mut file = Vec::new();
    let manifest = store.export(&tenant, &mut file, &|_| {}).await?;
    let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
    ensure!(rows >= 1, "the export holds its rows: {manifest:?}");
    drop(store);

    let res = app
        .admin_post("/admin/tenants/www/suspend", json!({}))
        .await?;
    problem(res, StatusCode::CONFLICT).await?;

    let res = app
        .admin_post("/admin/tenants/paused/resume", json!({}))
        .await?;
    ensure!(res.status() == StatusCode::OK, "resume: {}", res.status());
    let page = projects(&app, "paused", &token).await?;
    let names: Vec<&str> = page["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    ensure!(
        names == ["kept"],
        "served again, with its rows and only those: {names:?}"
    );
    app.finish().await
}

/// Two processes on one database: B serves (and caches) the tenant, A suspends it, B refuses
/// within a second; A resumes it, B serves it again within a second.
async fn suspension_reaches_every_process_within_a_second(strategy: Strategy) -> Result<()> {
    let a = spawn_app(strategy).await?;
    let url = a.db.as_ref().context("database")?.url().to_owned();
    let b = spawn_on(strategy, &url).await?;
    let token = a.tenant_with_owner("corp").await?;
    let read = || b.tenant(Method::GET, "corp", "/projects", &token);
    ensure!(read().send().await?.status() == StatusCode::OK);

    let res = a
        .admin_post("/admin/tenants/corp/suspend", json!({}))
        .await?;
    ensure!(res.status() == StatusCode::OK, "suspend: {}", res.status());
    let suspended = until(StatusCode::FORBIDDEN, "a suspended tenant in B", read).await?;
    let res = a
        .admin_post("/admin/tenants/corp/resume", json!({}))
        .await?;
    ensure!(res.status() == StatusCode::OK, "resume: {}", res.status());
    let resumed = until(StatusCode::OK, "a resumed tenant in B", read).await?;
    ensure!(
        suspended < Duration::from_secs(1) && resumed < Duration::from_secs(1),
        "B followed within a second: suspended after {suspended:?}, resumed after {resumed:?}"
    );
    b.finish().await?;
    a.finish().await
}
