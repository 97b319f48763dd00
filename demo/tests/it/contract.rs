//! The API keeps the contract its OpenAPI document states, for the three kinds of failure
//! schemathesis found with every check on (`-c all`): a body that is not the documented
//! object, a value the document allows but the domain refused, and a method a route does not
//! declare.

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenancy_core::Strategy;

use crate::helpers::{ADMIN, problem, spawn_app};

crate::per_strategy!(
    a_body_that_is_not_an_object_is_refused,
    the_document_and_the_domain_accept_the_same_values,
    an_undeclared_method_gets_405_with_allow
);

/// `[null, null]` is no patch (serde would read it as one of two absent fields): 422, and the
/// project and the task are as they were.
async fn a_body_that_is_not_an_object_is_refused(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let token = app.tenant_with_owner("globex").await?;
    let p = app.project("globex", &token, "Keep").await?;
    let res = app
        .tenant(
            Method::POST,
            "globex",
            &format!("/projects/{p}/tasks"),
            &token,
        )
        .json(&json!({"title": "Stay"}))
        .send()
        .await?;
    ensure!(res.status() == StatusCode::CREATED, "{}", res.status());
    let t = res.json::<Value>().await?["id"]
        .as_str()
        .context("task id")?
        .to_owned();
    for (path, body) in [
        (format!("/projects/{p}"), json!([null, null])),
        (format!("/projects/{p}"), json!(["Renamed", "x"])),
        (format!("/tasks/{t}"), json!([null, null])),
        (format!("/tasks/{t}"), json!(["Renamed", true])),
    ] {
        let res = app
            .tenant(Method::PATCH, "globex", &path, &token)
            .json(&body)
            .send()
            .await?;
        problem(res, StatusCode::UNPROCESSABLE_ENTITY).await?;
    }
    let created = app
        .tenant(Method::POST, "globex", "/projects", &token)
        .json(&json!(["New"]))
        .send()
        .await?;
    problem(created, StatusCode::UNPROCESSABLE_ENTITY).await?;
    ensure!(app.project_names("globex", &token).await? == ["Keep"]);
    let task: Value = app
        .tenant(Method::GET, "globex", &format!("/tasks/{t}"), &token)
        .send()
        .await?
        .json()
        .await?;
    ensure!(task["title"] == "Stay" && task["done"] == false, "{task}");
    app.finish().await
}

/// For each text field of the tenant API, values on both sides of its rule: the API accepts a
/// value exactly when the document's schema for the field (pattern, minLength, maxLength)
/// allows it. Control characters and non-ASCII spaces are not blank; ASCII whitespace alone is.
async fn the_document_and_the_domain_accept_the_same_values(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let token = app.tenant_with_owner("globex").await?;
    let p = app.project("globex", &token, "Parent").await?;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await?
        .json()
        .await?;
    let cases = [
        "x".to_owned(),
        "\u{1}\u{2}\u{1f}".to_owned(),
        "\u{1c}".to_owned(),
        "\u{a0}".to_owned(),
        " a ".to_owned(),
        String::new(),
        " ".to_owned(),
        "\t\n\u{b}\u{c}\r ".to_owned(),
        "a\u{0}".to_owned(),
        "é".repeat(200),
        "é".repeat(201),
        "t".repeat(500),
        "t".repeat(501),
    ];
    for (schema, field, path) in [
        ("NewProject", "name", "/projects".to_owned()),
        ("NewTask", "title", format!("/projects/{p}/tasks")),
    ] {
        let rule = &doc["components"]["schemas"][schema]["properties"][field];
        let pattern = regex::Regex::new(rule["pattern"].as_str().context("a pattern")?)?;
        let max = rule["maxLength"].as_u64().context("a maxLength")? as usize;
        let min = rule["minLength"].as_u64().unwrap_or(0) as usize;
        for value in &cases {
            let n = value.chars().count();
            let allowed = pattern.is_match(value) && n >= min && n <= max;
            let res = app
                .tenant(Method::POST, "globex", &path, &token)
                .json(&json!({ field: value }))
                .send()
                .await?;
            let status = res.status();
            ensure!(
                status.is_success() == allowed,
                "{schema}.{field} = {value:?} ({n} characters): the document {} it, the API \
                 answered {status}",
                if allowed { "allows" } else { "refuses" }
            );
            if !allowed {
                problem(res, StatusCode::UNPROCESSABLE_ENTITY).await?;
            }
        }
    }
    app.finish().await
}

/// A method a route does not declare: 405, `Allow` with the methods it declares, and a
/// problem document; on the tenant, admin and operations routes.
async fn an_undeclared_method_gets_405_with_allow(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let token = app.tenant_with_owner("globex").await?;
    let p = app.project("globex", &token, "Keep").await?;
    let admin = ADMIN.to_owned();
    let cases = [
        (
            Method::PUT,
            app.url("/t/globex/api/projects"),
            "GET, POST",
            &token,
        ),
        (
            Method::POST,
            app.url(&format!("/t/globex/api/projects/{p}")),
            "GET, PATCH, DELETE",
            &token,
        ),
        (
            Method::DELETE,
            app.url("/t/globex/api/summary"),
            "GET",
            &token,
        ),
        (
            Method::PATCH,
            app.url("/admin/tenants"),
            "POST, GET",
            &admin,
        ),
        (
            Method::POST,
            app.url("/admin/tenants/globex"),
            "GET, DELETE",
            &admin,
        ),
        (Method::POST, app.url("/healthz"), "GET", &token),
        (Method::TRACE, app.url("/openapi.json"), "GET", &token),
    ];
    for (method, url, allow, bearer) in cases {
        let res = app
            .client
            .request(method.clone(), &url)
            .bearer_auth(bearer)
            .send()
            .await?;
        let got = res
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        ensure!(
            got == allow,
            "{method} {url}: Allow {got:?}, expected {allow:?}"
        );
        problem(res, StatusCode::METHOD_NOT_ALLOWED).await?;
    }
    ensure!(app.project_names("globex", &token).await? == ["Keep"]);
    app.finish().await
}
