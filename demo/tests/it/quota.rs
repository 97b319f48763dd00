//! Usage and quotas through the HTTP API: a tenant's usage (statements counted by its scopes,
//! storage, rows against its plan) at `/admin/tenants/{slug}/usage` and in `/metrics`; a plan's
//! row limit refusing the write past it with 409 and writing nothing, exactly at the limit
//! under 20 concurrent writers, while the tenant's other requests are served; a plan change
//! reaching a second process within a second; an import over the plan keeping every row.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenancy_core::{Limits, NewTenant, Slug, Strategy};
use tenancy_demo::settings::Settings;
use tenancy_demo::strategy::StoreSettings;

use crate::helpers::{ADMIN, TestApp, problem, spawn_app_with, until};

crate::per_strategy!(
    usage_is_counted_per_tenant_and_shown,
    writers_at_the_limit_end_with_exactly_the_limit,
    a_plan_change_reaches_every_process_within_a_second,
    an_import_over_the_plan_keeps_every_row_and_refuses_adding
);

/// The plan `tight`: `projects` rows at most, no storage limit; the default plan.
fn tight(projects: u64) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.plans.insert(
            "tight".into(),
            Limits {
                rows: BTreeMap::from([("projects".to_owned(), projects)]),
                storage_bytes: None,
            },
        );
        s.default_plan = "tight".into();
    }
}

async fn admin_get(app: &TestApp, path: &str) -> Result<Value> {
    let (status, body) = app.admin_get(path).await?;
    ensure!(status == StatusCode::OK, "{path}: {status}");
    Ok(body)
}

async fn put_plan(app: &TestApp, slug: &str, plan: Value) -> Result<reqwest::Response> {
    Ok(app
        .client
        .put(app.url(&format!("/admin/tenants/{slug}/plan")))
        .bearer_auth(ADMIN)
        .json(&json!({ "plan": plan }))
        .send()
        .await?)
}

fn create(app: &TestApp, slug: &str, token: &str, name: &str) -> reqwest::RequestBuilder {
    app.tenant(Method::POST, slug, "/projects", token)
        .json(&json!({ "name": name }))
}

/// alpha writes and reads, bravo does nothing: alpha's usage counts its statements and rows
/// and its storage; bravo's shows none of alpha's; `/metrics` names alpha.
async fn usage_is_counted_per_tenant_and_shown(strategy: Strategy) -> Result<()> {
    // The shipped plans, and every tenant of the process named in /metrics (the tests of this
    // binary share one meter; its bound is checked below with a small one).
    let app = spawn_app_with(strategy, |s| {
        s.default_plan = "free".into();
        s.metrics_tenants = usize::MAX;
    })
    .await?;
    let alpha = app.tenant_with_owner("alpha").await?;
    app.tenant_with_owner("bravo").await?;
    for i in 0..5 {
        app.project("alpha", &alpha, &format!("p{i}")).await?;
    }
    ensure!(app.project_names("alpha", &alpha).await?.len() == 5);

    let usage = admin_get(&app, "/admin/tenants/alpha/usage").await?;
    let statements = usage["statements"]["statements"]
        .as_u64()
        .context("statements")?;
    let rows = usage["statements"]["rows"].as_u64().context("rows")?;
    // Each create sends at least its quota lock, its count and its insert; the read its page.
    ensure!(statements >= 16, "alpha's statements: {usage}");
    ensure!(rows >= 10, "5 inserted and 5 read back at least: {usage}");
    ensure!(usage["statements"]["micros"].as_u64() > Some(0), "{usage}");
    ensure!(usage["plan"]["name"] == "free", "the default plan: {usage}");
    let projects = usage["rows"]
        .as_array()
        .and_then(|r| r.iter().find(|t| t["table"] == "projects"))
        .context("projects against the plan")?;
    ensure!(projects["used"] == 5 && projects["limit"] == 100, "{usage}");
    let storage = &usage["storage"];
    ensure!(
        storage["bytes"].as_u64() > Some(0),
        "alpha's storage: {usage}"
    );
    ensure!(
        storage["estimated"] == json!(strategy == Strategy::SharedSchema),
        "estimated exactly on shared tables: {usage}"
    );

    let bravo = admin_get(&app, "/admin/tenants/bravo/usage").await?;
    ensure!(
        bravo["statements"]["statements"] == 0,
        "bravo sent nothing: {bravo}"
    );
    let bravo_projects = bravo["storage"]["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["table"] == "projects"))
        .context("bravo's projects")?;
    ensure!(bravo_projects["rows"] == 0, "none of alpha's rows: {bravo}");

    let metrics = app.metrics().await?;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tenant_statements_total{tenant=\"alpha\"}"))
        .with_context(|| format!("alpha in /metrics:\n{metrics}"))?;
    let counted: u64 = line.rsplit(' ').next().context("value")?.parse()?;
    ensure!(counted >= statements, "{line} against {statements}");
    app.finish().await?;

    // Bounded: at most two tenants named, every other summed as `other`, though this app knows
    // four that sent statements (the three below and the sample tenant). (The tests of this
    // binary share the process's meter: tenants of other tests' databases, busier than these,
    // are not in this app's catalog and count under `other`.)
    let small = spawn_app_with(strategy, |s| s.metrics_tenants = 2).await?;
    for slug in ["one", "two", "three"] {
        let token = small.tenant_with_owner(slug).await?;
        small.project_names(slug, &token).await?;
    }
    let metrics = small.metrics().await?;
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("tenant_statements_total{"))
        .collect();
    ensure!(
        series.len() <= 3 && series.iter().any(|l| l.contains("tenant=\"other\"")),
        "at most two tenants, and other: {series:?}"
    );
    small.finish().await
}

/// A plan of 7 projects and 20 writers at once: exactly 7 created, the others refused with
/// 409 `/problems/quota-exceeded`, 7 rows in the end; the tenant's reads and changes still
/// served, another tenant unaffected.
async fn writers_at_the_limit_end_with_exactly_the_limit(strategy: Strategy) -> Result<()> {
    const LIMIT: usize = 7;
    let app = spawn_app_with(strategy, tight(LIMIT as u64)).await?;
    let token = app.tenant_with_owner("edge").await?;
    let other = app.tenant_with_owner("roomy").await?;
    let writers = (0..20).map(|i| create(&app, "edge", &token, &format!("w{i}")).send());
    let answers = futures::future::join_all(writers).await;
    let mut created = 0;
    let mut refused = Vec::new();
    for res in answers {
        let res = res?;
        match res.status() {
            StatusCode::CREATED => created += 1,
            _ => refused.push(problem(res, StatusCode::CONFLICT).await?),
        }
    }
    ensure!(created == LIMIT, "{created} created, not {LIMIT}");
    ensure!(refused.len() == 20 - LIMIT);
    ensure!(
        refused
            .iter()
            .all(|p| p["type"] == "/problems/quota-exceeded"),
        "{refused:?}"
    );
    let names = app.project_names("edge", &token).await?;
    ensure!(names.len() == LIMIT, "{} rows: {names:?}", names.len());

    // At the limit, the tenant's other requests are served.
    let res = app
        .tenant(Method::GET, "edge", "/summary", &token)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK, "summary: {}", res.status());
    let first = app.project("roomy", &other, "fine").await;
    ensure!(first.is_ok(), "another tenant: {first:?}");
    let usage = admin_get(&app, "/admin/tenants/edge/usage").await?;
    ensure!(
        usage["rows"][0]["used"] == LIMIT && usage["rows"][0]["limit"] == LIMIT,
        "{usage}"
    );
    app.finish().await
}

/// Two processes: B refuses the tenant's write at its plan's limit; A puts it on `pro`; B
/// takes the write within a second. Back on the default (`null`), B refuses again.
async fn a_plan_change_reaches_every_process_within_a_second(strategy: Strategy) -> Result<()> {
    let a = spawn_app_with(strategy, tight(1)).await?;
    let url = a.db.as_ref().context("database")?.url().to_owned();
    let b = crate::helpers::spawn_with(strategy, &url, tight(1)).await?;
    let token = a.tenant_with_owner("grows").await?;
    a.project("grows", &token, "first").await?;
    let res = create(&b, "grows", &token, "second").send().await?;
    problem(res, StatusCode::CONFLICT).await?;

    let res = put_plan(&a, "grows", json!("pro")).await?;
    ensure!(res.status() == StatusCode::OK, "put plan: {}", res.status());
    let view: Value = res.json().await?;
    ensure!(view["plan"] == "pro", "{view}");
    let upgraded = until(
        StatusCode::CREATED,
        "a write after the upgrade in B",
        || create(&b, "grows", &token, "more"),
    )
    .await?;
    let res = put_plan(&a, "grows", Value::Null).await?;
    ensure!(
        res.status() == StatusCode::OK,
        "back to default: {}",
        res.status()
    );
    let downgraded = until(
        StatusCode::CONFLICT,
        "a write after the downgrade in B",
        || create(&b, "grows", &token, "refused"),
    )
    .await?;
    ensure!(
        upgraded < Duration::from_secs(1) && downgraded < Duration::from_secs(1),
        "B followed within a second: {upgraded:?} and {downgraded:?}"
    );
    // An unknown plan is refused, and changes nothing.
    let res = put_plan(&a, "grows", json!("platinum")).await?;
    problem(res, StatusCode::UNPROCESSABLE_ENTITY).await?;
    b.finish().await?;
    a.finish().await
}

/// An export of 5 projects imported into a tenant whose plan allows 3: the import keeps all
/// 5 (an import never drops rows for a plan); adding is refused until the tenant is under its
/// limit, while reading and deleting are served.
async fn an_import_over_the_plan_keeps_every_row_and_refuses_adding(
    strategy: Strategy,
) -> Result<()> {
    let app = spawn_app_with(strategy, |s| {
        s.plans.insert(
            "roomy".into(),
            Limits {
                rows: BTreeMap::from([("projects".to_owned(), 100)]),
                storage_bytes: None,
            },
        );
        tight(3)(s)
    })
    .await?;
    let token = app.tenant_with_owner("source").await?;
    let res = put_plan(&app, "source", json!("roomy")).await?;
    ensure!(res.status() == StatusCode::OK);
    for i in 0..5 {
        app.project("source", &token, &format!("p{i}")).await?;
    }
    let db = app.db.as_ref().context("the test's database")?;
    let settings = crate::helpers::settings(strategy, db.url())?;
    let store =
        tenancy_demo::strategy::open(strategy, db.url(), &StoreSettings::from(&settings)).await?;
    let source = store.tenant_by_slug(&Slug::parse("source")?).await?;
    let mut file = Vec::new();
    store.export(&source, &mut file, &|_| {}).await?;
    let mut input = std::io::Cursor::new(file);
    let copy = store
        .import(
            NewTenant::new(Slug::parse("copy")?, "copy"),
            &mut input,
            &|_| {},
        )
        .await?;
    drop(store);
    ensure!(copy.plan.is_none(), "on the default plan: {copy:?}");

    let user = app.user("copy@example.com").await?;
    app.grant("copy", &user, "owner").await?;
    let copy_token = app.token(&user).await?;
    let names = app.project_names("copy", &copy_token).await?;
    ensure!(names.len() == 5, "every row imported: {names:?}");
    let usage = admin_get(&app, "/admin/tenants/copy/usage").await?;
    ensure!(
        usage["rows"][0]["used"] == 5 && usage["rows"][0]["limit"] == 3,
        "{usage}"
    );
    let res = create(&app, "copy", &copy_token, "sixth").send().await?;
    problem(res, StatusCode::CONFLICT).await?;
    ensure!(app.project_names("copy", &copy_token).await?.len() == 5);

    // Deleting is served; under the limit again, adding is too.
    let page: Value = app
        .tenant(Method::GET, "copy", "/projects", &copy_token)
        .send()
        .await?
        .json()
        .await?;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    for id in &ids[..3] {
        let res = app
            .tenant(
                Method::DELETE,
                "copy",
                &format!("/projects/{id}"),
                &copy_token,
            )
            .send()
            .await?;
        ensure!(
            res.status() == StatusCode::NO_CONTENT,
            "delete: {}",
            res.status()
        );
    }
    app.project("copy", &copy_token, "fits").await?;
    app.finish().await
}
