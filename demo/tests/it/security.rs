//! Security a user would notice: one winner when a slug is created twice at once; tokens
//! listed, revoked and expired; and a revoked token, a removed membership or a deleted tenant
//! refused by every process within a second.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenancy_core::Strategy;

use crate::helpers::{ADMIN, TestApp, problem, spawn_app, spawn_on, until};

crate::per_strategy!(
    one_slug_created_twice_at_once_gives_one_201_and_one_409,
    tokens_are_listed_expire_and_bad_input_writes_nothing,
    changes_reach_every_process_within_a_second,
);

async fn one_slug_created_twice_at_once_gives_one_201_and_one_409(
    strategy: Strategy,
) -> Result<()> {
    let app = spawn_app(strategy).await?;
    let attempts =
        (0..6).map(|_| app.admin_post("/admin/tenants", json!({"slug": "twice", "name": "Twice"})));
    let mut statuses = Vec::new();
    for res in futures::future::join_all(attempts).await {
        statuses.push(res?.status());
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    ensure!(
        created == 1 && conflicts == 5,
        "six creations of one slug at once: {statuses:?}"
    );
    let slugs = app.tenant_slugs().await?;
    ensure!(
        slugs.iter().filter(|s| *s == "twice").count() == 1,
        "one tenant: {slugs:?}"
    );
    app.finish().await
}

async fn issue(app: &TestApp, user: &str, body: Value) -> Result<reqwest::Response> {
    app.admin_post(&format!("/admin/users/{user}/tokens"), body)
        .await
}

async fn list_tokens(app: &TestApp, user: &str) -> Result<Vec<Value>> {
    let res = app
        .client
        .get(app.url(&format!("/admin/users/{user}/tokens")))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK, "list: {}", res.status());
    Ok(res.json().await?)
}

async fn tokens_are_listed_expire_and_bad_input_writes_nothing(strategy: Strategy) -> Result<()> {
    let app = spawn_app(strategy).await?;
    app.tenant_with_owner("corp").await?;
    let user = app.user("short@example.com").await?;
    app.grant("corp", &user, "member").await?;
    for bad in [
        json!({"expires_in_secs": 0}),
        json!({"expires_in_secs": -5}),
        json!({"expires_in_secs": "soon"}),
        json!({"expires_in_days": 3}),
    ] {
        let res = issue(&app, &user, bad.clone()).await?;
        problem(res, StatusCode::UNPROCESSABLE_ENTITY)
            .await
            .with_context(|| format!("body {bad}"))?;
    }
    ensure!(
        list_tokens(&app, &user).await?.is_empty(),
        "refused bodies issued no token"
    );

    let res = issue(&app, &user, json!({"expires_in_secs": 2})).await?;
    ensure!(res.status() == StatusCode::CREATED);
    let issued: Value = res.json().await?;
    let token = issued["token"].as_str().context("token")?.to_owned();
    ensure!(
        !issued["expires_at"].is_null(),
        "the expiry is shown: {issued}"
    );
    let listed = list_tokens(&app, &user).await?;
    ensure!(
        listed.len() == 1 && listed[0]["id"] == issued["id"],
        "{listed:?}"
    );
    ensure!(
        listed[0].get("token").is_none() && !listed[0].to_string().contains(&token),
        "a listed token does not show the token"
    );
    let get = || app.tenant(Method::GET, "corp", "/projects", &token).send();
    ensure!(
        get().await?.status() == StatusCode::OK,
        "works before it expires"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    problem(get().await?, StatusCode::UNAUTHORIZED).await?;

    let res = app
        .client
        .get(app.url("/admin/users/0190a3b4-0000-7000-8000-000000000000/tokens"))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    problem(res, StatusCode::NOT_FOUND).await?;
    let res = app.admin_delete("/admin/tokens/not-a-uuid").await?;
    problem(res, StatusCode::NOT_FOUND).await?;
    app.finish().await
}

/// Checks that a response is a 204.
fn no_content(what: &'static str) -> impl Fn(reqwest::Response) -> Result<()> {
    move |res| {
        ensure!(
            res.status() == StatusCode::NO_CONTENT,
            "{what}: {}",
            res.status()
        );
        Ok(())
    }
}

/// Two processes of the app on one database. B has served a token, a membership and a tenant
/// (and cached them); A revokes the token, removes the membership, deletes the tenant. Each
/// time B refuses within a second, for reads and writes.
async fn changes_reach_every_process_within_a_second(strategy: Strategy) -> Result<()> {
    let a = spawn_app(strategy).await?;
    let url = a.db.as_ref().context("database")?.url().to_owned();
    let b = spawn_on(strategy, &url).await?;
    a.tenant_with_owner("corp").await?;
    let user = a.user("member@example.com").await?;
    a.grant("corp", &user, "member").await?;
    let issued: Value = issue(&a, &user, json!({})).await?.json().await?;
    let token = issued["token"].as_str().context("token")?.to_owned();
    let token_id = issued["id"].as_str().context("id")?.to_owned();
    let read = |token: &str| b.tenant(Method::GET, "corp", "/projects", token);
    ensure!(read(&token).send().await?.status() == StatusCode::OK);

    // The token, revoked through A.
    a.admin_delete(&format!("/admin/tokens/{token_id}"))
        .await
        .and_then(no_content("revoke"))?;
    let revoked = until(StatusCode::UNAUTHORIZED, "a revoked token in B", || {
        read(&token)
    })
    .await?;

    // The membership, removed through A.
    let token = a.token(&user).await?;
    ensure!(read(&token).send().await?.status() == StatusCode::OK);
    a.admin_delete(&format!("/admin/tenants/corp/members/{user}"))
        .await
        .and_then(no_content("remove"))?;
    let removed = until(StatusCode::NOT_FOUND, "a removed member in B", || {
        read(&token)
    })
    .await?;

    // The tenant, deleted through A.
    a.grant("corp", &user, "member").await?;
    until(StatusCode::OK, "a member again in B", || read(&token)).await?;
    a.admin_delete("/admin/tenants/corp")
        .await
        .and_then(no_content("delete"))?;
    let deleted = until(StatusCode::NOT_FOUND, "a deleted tenant in B", || {
        read(&token)
    })
    .await?;
    let write = b
        .tenant(Method::POST, "corp", "/projects", &token)
        .json(&json!({"name": "late"}))
        .send()
        .await?;
    problem(write, StatusCode::NOT_FOUND).await?;

    tenancy_testkit::fault_report(
        &format!("changes_reach_every_process-{strategy}"),
        &json!({
            "revoked_token_refused_after_ms": revoked.as_millis(),
            "removed_member_refused_after_ms": removed.as_millis(),
            "deleted_tenant_refused_after_ms": deleted.as_millis(),
        }),
    )?;
    for (what, took) in [
        ("revoked token", revoked),
        ("removed membership", removed),
        ("deleted tenant", deleted),
    ] {
        ensure!(
            took < Duration::from_secs(1),
            "B took {took:?} to refuse a {what}"
        );
    }
    b.finish().await?;
    a.finish().await
}
