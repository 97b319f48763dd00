//! Cross-tenant denial and authentication: one tenant's token, ids and members never reach
//! another tenant, and nobody learns which tenants exist.

use anyhow::{Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tenancy_core::Strategy;

use crate::helpers::{ADMIN, problem, spawn_app};

crate::per_strategy!(other_tenants_are_invisible, tokens_are_required);

async fn other_tenants_are_invisible(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let a = app.tenant_with_owner("alpha").await?;
    let b = app.tenant_with_owner("bravo").await?;
    let a_project = app.project("alpha", &a, "A's secret").await?;
    app.project("bravo", &b, "B's own").await?;

    // A's token on B, by path and by header: 404 like a tenant that does not exist.
    let res = app
        .tenant(Method::GET, "bravo", "/projects", &a)
        .send()
        .await?;
    let denied = problem(res, StatusCode::NOT_FOUND).await?;
    let res = app
        .client
        .get(app.url("/api/projects"))
        .header("X-Tenant", "bravo")
        .bearer_auth(&a)
        .send()
        .await?;
    problem(res, StatusCode::NOT_FOUND).await?;
    let res = app
        .tenant(Method::GET, "nosuch", "/projects", &a)
        .send()
        .await?;
    let unknown = problem(res, StatusCode::NOT_FOUND).await?;
    ensure!(
        denied["detail"] == unknown["detail"],
        "a non-member and an unknown tenant must look the same: {denied} vs {unknown}"
    );

    // A user who is a member of both: A's ids under B are not found, and stay untouched.
    let both = app.user("both@example.com").await?;
    app.grant("alpha", &both, "member").await?;
    app.grant("bravo", &both, "member").await?;
    let tok = app.token(&both).await?;
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "stolen"}))),
        (Method::DELETE, None),
    ] {
        let mut req = app.tenant(
            method.clone(),
            "bravo",
            &format!("/projects/{a_project}"),
            &tok,
        );
        if let Some(body) = body {
            req = req.json(&body);
        }
        problem(req.send().await?, StatusCode::NOT_FOUND).await?;
    }
    let a_task: serde_json::Value = app
        .tenant(
            Method::POST,
            "alpha",
            &format!("/projects/{a_project}/tasks"),
            &a,
        )
        .json(&json!({"title": "A's task"}))
        .send()
        .await?
        .json()
        .await?;
    let a_task = a_task["id"].as_str().unwrap_or_default().to_owned();
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"done": true}))),
        (Method::DELETE, None),
    ] {
        let mut req = app.tenant(method.clone(), "bravo", &format!("/tasks/{a_task}"), &tok);
        if let Some(body) = body {
            req = req.json(&body);
        }
        problem(req.send().await?, StatusCode::NOT_FOUND).await?;
    }
    let res = app
        .tenant(
            Method::POST,
            "bravo",
            &format!("/projects/{a_project}/tasks"),
            &tok,
        )
        .json(&json!({"title": "planted"}))
        .send()
        .await?;
    problem(res, StatusCode::NOT_FOUND).await?;
    ensure!(app.project_names("alpha", &a).await? == vec!["A's secret".to_owned()]);
    let task: serde_json::Value = app
        .tenant(Method::GET, "alpha", &format!("/tasks/{a_task}"), &a)
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        task["done"] == false && task["title"] == "A's task",
        "{task}"
    );
    ensure!(app.project_names("bravo", &b).await? == vec!["B's own".to_owned()]);

    // A non-member of any tenant.
    let loner = app.user("loner@example.com").await?;
    let tok = app.token(&loner).await?;
    let res = app
        .tenant(Method::GET, "alpha", "/projects", &tok)
        .send()
        .await?;
    problem(res, StatusCode::NOT_FOUND).await?;
    app.finish().await
}

async fn tokens_are_required(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let a = app.tenant_with_owner("alpha").await?;
    for req in [
        app.client.get(app.url("/t/alpha/api/projects")),
        app.client
            .get(app.url("/t/alpha/api/projects"))
            .bearer_auth("tnc_not-a-token"),
        app.client.get(app.url("/t/nosuch/api/projects")),
        app.client.get(app.url("/admin/tenants")),
        app.client.get(app.url("/admin/tenants")).bearer_auth(&a),
    ] {
        let res = req.send().await?;
        let challenge = res
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        problem(res, StatusCode::UNAUTHORIZED).await?;
        ensure!(challenge.as_deref() == Some("Bearer"), "{challenge:?}");
    }
    // Authentication comes before everything else that could be wrong with a request.
    let res = app
        .client
        .post(app.url("/t/alpha/api/projects"))
        .bearer_auth("tnc_not-a-token")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    problem(res, StatusCode::UNAUTHORIZED).await?;
    // And membership before the query string: a non-member learns nothing from a 422.
    let res = app
        .client
        .get(app.url("/t/nosuch/api/projects?limit=0"))
        .bearer_auth(&a)
        .send()
        .await?;
    problem(res, StatusCode::NOT_FOUND).await?;
    let res = app
        .client
        .get(app.url("/admin/tenants"))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK);
    app.finish().await
}
