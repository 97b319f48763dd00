//! Every route family, the first-run flow, and the three ways to name a tenant.

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenancy_core::Strategy;

use crate::helpers::{ADMIN, problem, spawn_app};

crate::per_strategy!(
    first_run_token_reads_the_sample_tenant,
    projects_and_tasks_round_trip,
    tenant_named_by_path_header_or_subdomain,
    admin_routes,
);

/// The first run creates a tenant, its owner and a token; the printed curl line (a GET on
/// the tenant's projects with that token) answers 200 with the sample project.
async fn first_run_token_reads_the_sample_tenant(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let first = app
        .first_run
        .clone()
        .context("a fresh database gets the sample data")?;
    let res = app
        .client
        .get(app.url(&format!("/t/{}/api/projects", first.tenant)))
        .header("Authorization", format!("Bearer {}", first.token))
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK, "{}", res.status());
    let body: Value = res.json().await?;
    ensure!(body["items"][0]["name"] == "Welcome", "{body}");
    app.finish().await
}

async fn projects_and_tasks_round_trip(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let token = app.tenant_with_owner("globex").await?;
    let t = |m: Method, p: &str| app.tenant(m, "globex", p, &token);

    let p = app.project("globex", &token, "Launch").await?;
    let second = app.project("globex", &token, "Second").await?;
    // Paging: a page of one, then the rest through the cursor.
    let page: Value = t(Method::GET, "/projects?limit=1")
        .send()
        .await?
        .json()
        .await?;
    ensure!(page["items"].as_array().map(Vec::len) == Some(1), "{page}");
    let next = page["next"].as_str().context("a next cursor")?;
    let rest: Value = t(Method::GET, &format!("/projects?limit=10&after={next}"))
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        rest["items"][0]["id"] == second.as_str() && rest["next"].is_null(),
        "{rest}"
    );

    let res = t(Method::PATCH, &format!("/projects/{p}"))
        .json(&json!({"name": "Launch v2"}))
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK);
    let got: Value = t(Method::GET, &format!("/projects/{p}"))
        .send()
        .await?
        .json()
        .await?;
    ensure!(got["name"] == "Launch v2", "{got}");

    let res = t(Method::POST, &format!("/projects/{p}/tasks"))
        .json(&json!({"title": "Write the post"}))
        .send()
        .await?;
    ensure!(res.status() == StatusCode::CREATED, "{}", res.status());
    let task: Value = res.json().await?;
    let task_id = task["id"].as_str().context("task id")?.to_owned();
    t(Method::POST, &format!("/projects/{p}/tasks"))
        .json(&json!({"title": "Ship it"}))
        .send()
        .await?;
    let tasks: Value = t(Method::GET, &format!("/projects/{p}/tasks"))
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        tasks["items"].as_array().map(Vec::len) == Some(2),
        "{tasks}"
    );

    let res = t(Method::PATCH, &format!("/tasks/{task_id}"))
        .json(&json!({"done": true}))
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK);
    let got: Value = t(Method::GET, &format!("/tasks/{task_id}"))
        .send()
        .await?
        .json()
        .await?;
    ensure!(got["done"] == true, "{got}");

    let summary: Value = t(Method::GET, "/summary").send().await?.json().await?;
    let launch = summary["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["id"] == p.as_str()))
        .context("the project in the summary")?;
    ensure!(
        launch["open_tasks"] == 1 && launch["done_tasks"] == 1,
        "{summary}"
    );

    ensure!(
        t(Method::DELETE, &format!("/tasks/{task_id}"))
            .send()
            .await?
            .status()
            == StatusCode::NO_CONTENT
    );
    problem(
        t(Method::GET, &format!("/tasks/{task_id}")).send().await?,
        StatusCode::NOT_FOUND,
    )
    .await?;
    ensure!(
        t(Method::DELETE, &format!("/projects/{p}"))
            .send()
            .await?
            .status()
            == StatusCode::NO_CONTENT
    );
    problem(
        t(Method::GET, &format!("/projects/{p}")).send().await?,
        StatusCode::NOT_FOUND,
    )
    .await?;
    ensure!(app.project_names("globex", &token).await? == vec!["Second".to_owned()]);
    app.finish().await
}

async fn tenant_named_by_path_header_or_subdomain(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let token = app.tenant_with_owner("globex").await?;
    app.project("globex", &token, "Only in globex").await?;
    let names = |body: Value| -> Vec<String> {
        body["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let by_path: Value = app
        .client
        .get(app.url("/t/globex/api/projects"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let by_header: Value = app
        .client
        .get(app.url("/api/projects"))
        .header("X-Tenant", "globex")
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let by_subdomain: Value = app
        .client
        .get(app.url("/api/projects"))
        .header("Host", format!("globex.localhost:{}", app.port))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    for (how, body) in [
        ("path", by_path),
        ("header", by_header),
        ("subdomain", by_subdomain),
    ] {
        ensure!(
            names(body.clone()) == vec!["Only in globex".to_owned()],
            "{how}: {body}"
        );
    }
    // No tenant named at all: 404, not somebody's data.
    let res = app
        .client
        .get(app.url("/api/projects"))
        .bearer_auth(&token)
        .send()
        .await?;
    problem(res, StatusCode::NOT_FOUND).await?;
    app.finish().await
}

async fn admin_routes(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let res = app
        .admin_post(
            "/admin/tenants",
            json!({"slug": "initech", "name": "Initech"}),
        )
        .await?;
    ensure!(res.status() == StatusCode::CREATED, "{}", res.status());
    let body: Value = res.json().await?;
    ensure!(
        body["state"] == "ready" && body["slug"] == "initech",
        "{body}"
    );
    let again = app
        .admin_post(
            "/admin/tenants",
            json!({"slug": "initech", "name": "Again"}),
        )
        .await?;
    problem(again, StatusCode::CONFLICT).await?;
    ensure!(app.tenant_slugs().await?.contains(&"initech".to_owned()));
    let one: Value = app
        .client
        .get(app.url("/admin/tenants/initech"))
        .bearer_auth(ADMIN)
        .send()
        .await?
        .json()
        .await?;
    ensure!(one["name"] == "Initech", "{one}");

    let report = app.admin_post("/admin/migrate", json!({})).await?;
    ensure!(report.status() == StatusCode::OK, "{}", report.status());
    let report: Value = report.json().await?;
    ensure!(report["target_version"].as_i64() >= Some(1), "{report}");

    // Membership: granted, then revoked (the revocation takes effect at once).
    let user = app.user("member@example.com").await?;
    let token = app.token(&user).await?;
    app.grant("initech", &user, "member").await?;
    let res = app
        .tenant(Method::GET, "initech", "/projects", &token)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK, "{}", res.status());
    let res = app
        .client
        .delete(app.url(&format!("/admin/tenants/initech/members/{user}")))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::NO_CONTENT, "{}", res.status());
    let res = app
        .tenant(Method::GET, "initech", "/projects", &token)
        .send()
        .await?;
    problem(res, StatusCode::NOT_FOUND).await?;

    let res = app
        .client
        .delete(app.url("/admin/tenants/initech"))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::NO_CONTENT, "{}", res.status());
    let res = app
        .client
        .get(app.url("/admin/tenants/initech"))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    problem(res, StatusCode::NOT_FOUND).await?;
    ensure!(!app.tenant_slugs().await?.contains(&"initech".to_owned()));
    app.finish().await
}

/// A database whose tenants another strategy placed is refused at start, with a clear reason.
#[cfg(all(feature = "shared-schema", feature = "separate-schema"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_strategys_database_is_refused() -> Result<()> {
    let app = spawn_app(Strategy::SharedSchema).await?;
    let url = app.db.as_ref().context("db")?.url().to_owned();
    let settings = crate::helpers::settings(Strategy::SeparateSchema, &url)?;
    let refused =
        tenancy_demo::startup::Backend::open(Strategy::SeparateSchema, &url, &settings).await;
    let message = format!("{:#}", refused.err().context("must be refused")?);
    ensure!(message.contains("another strategy"), "{message}");
    app.finish().await
}
