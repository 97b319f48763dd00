//! Static and dynamic tenants: the configuration's `www` serves the public sign-up, which
//! creates a dynamic tenant and its owner; static tenants are listed apart and cannot be
//! deleted, moved or claimed through the API.

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenancy_core::Strategy;

use crate::helpers::{TestApp, problem, spawn_app_with, with_statics};

crate::per_strategy!(
    signup_through_www_creates_a_dynamic_tenant_to_work_in,
    static_tenants_cannot_be_deleted_moved_or_claimed,
    a_sign_up_that_fails_after_its_tenant_keeps_nothing,
);

fn signup_body(slug: &str, email: &str) -> Value {
    json!({"slug": slug, "name": format!("{slug} Ltd"), "email": email, "owner": "Peter Gibbons"})
}

async fn users_named(app: &TestApp, email: &str) -> Result<i64> {
    use tenancy_core::sea_orm::ConnectionTrait;
    let conn = app
        .db
        .as_ref()
        .context("the test database")?
        .admin()
        .await?;
    let row = conn
        .query_one_raw(tenancy_core::plumbing::sql::stmt(
            "SELECT count(*) AS n FROM tenancy.users WHERE email = $1",
            [email.into()],
        ))
        .await?
        .context("a count")?;
    Ok(row.try_get("", "n")?)
}

async fn signup_through_www_creates_a_dynamic_tenant_to_work_in(strategy: Strategy) -> Result<()> {
    let app = spawn_app_with(strategy, with_statics).await?;
    // www is there from the start, static, with its purpose.
    let (status, www) = app.admin_get("/admin/tenants/www").await?;
    ensure!(status == StatusCode::OK, "{status} {www}");
    ensure!(
        www["kind"] == "static" && www["purpose"] == "signup",
        "{www}"
    );

    // Signing up needs no token.
    let res = app
        .client
        .post(app.url("/t/www/signup"))
        .json(&signup_body("initech", "peter@initech.example"))
        .send()
        .await?;
    ensure!(
        res.status() == StatusCode::CREATED,
        "sign-up: {}",
        res.status()
    );
    let signed: Value = res.json().await?;
    ensure!(
        signed["tenant"]["slug"] == "initech" && signed["tenant"]["kind"] == "dynamic",
        "{signed}"
    );
    ensure!(signed["tenant"].get("purpose").is_none(), "{signed}");
    let token = signed["token"]["token"]
        .as_str()
        .context("token")?
        .to_owned();

    // The owner works in the new tenant at once ...
    app.project("initech", &token, "TPS reports").await?;
    ensure!(app.project_names("initech", &token).await? == ["TPS reports"]);
    // ... and nowhere else: not in www, not in the sample tenant.
    for other in ["www", "acme"] {
        let res = app
            .tenant(Method::GET, other, "/projects", &token)
            .send()
            .await?;
        problem(res, StatusCode::NOT_FOUND).await?;
    }
    // The list tells static from dynamic.
    let (_, list) = app.admin_get("/admin/tenants?limit=500").await?;
    let kinds: Vec<(String, String)> = list["items"]
        .as_array()
        .context("items")?
        .iter()
        .map(|t| {
            (
                t["slug"].as_str().unwrap_or("").to_owned(),
                t["kind"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for (slug, kind) in [
        ("www", "static"),
        ("acme", "dynamic"),
        ("initech", "dynamic"),
    ] {
        ensure!(
            kinds.contains(&(slug.to_owned(), kind.to_owned())),
            "{slug} should be {kind}: {kinds:?}"
        );
    }

    // The same site by subdomain.
    let res = app
        .client
        .post(app.url("/signup"))
        .header("Host", format!("www.localhost:{}", app.port))
        .json(&signup_body("chotchkies", "joanna@chotchkies.example"))
        .send()
        .await?;
    ensure!(
        res.status() == StatusCode::CREATED,
        "by subdomain: {}",
        res.status()
    );

    // A taken slug and a taken email are refused, and leave nothing behind.
    let res = app
        .client
        .post(app.url("/t/www/signup"))
        .json(&signup_body("initech", "someone@else.example"))
        .send()
        .await?;
    problem(res, StatusCode::CONFLICT).await?;
    ensure!(
        users_named(&app, "someone@else.example").await? == 0,
        "a user was kept"
    );
    let res = app
        .client
        .post(app.url("/t/www/signup"))
        .json(&signup_body("initrode", "peter@initech.example"))
        .send()
        .await?;
    problem(res, StatusCode::CONFLICT).await?;
    let (status, _) = app.admin_get("/admin/tenants/initrode").await?;
    ensure!(
        status == StatusCode::NOT_FOUND,
        "a tenant was kept: {status}"
    );
    // A bad slug: 422, nothing written.
    let res = app
        .client
        .post(app.url("/t/www/signup"))
        .json(&signup_body("Not A Slug", "bad@slug.example"))
        .send()
        .await?;
    problem(res, StatusCode::UNPROCESSABLE_ENTITY).await?;
    ensure!(
        users_named(&app, "bad@slug.example").await? == 0,
        "a user was kept"
    );

    // Only a static tenant with the purpose signs anyone up.
    let res = app
        .client
        .post(app.url("/t/initech/signup"))
        .json(&signup_body("initrode", "bill@initrode.example"))
        .send()
        .await?;
    problem(res, StatusCode::NOT_FOUND).await?;
    let slugs = app.tenant_slugs().await?;
    ensure!(!slugs.contains(&"initrode".to_owned()), "{slugs:?}");
    app.finish().await
}

async fn static_tenants_cannot_be_deleted_moved_or_claimed(strategy: Strategy) -> Result<()> {
    let app = spawn_app_with(strategy, with_statics).await?;
    // A member of www with a row in it, so that "changes nothing" can be counted.
    let user = app.user("webmaster@www.example").await?;
    app.grant("www", &user, "owner").await?;
    let token = app.token(&user).await?;
    app.project("www", &token, "Landing page").await?;
    let (_, before) = app.admin_get("/admin/tenants/www").await?;

    let refused = app.admin_delete("/admin/tenants/www").await?;
    let body = problem(refused, StatusCode::CONFLICT).await?;
    ensure!(
        body["detail"].as_str().unwrap_or("").contains("static"),
        "{body}"
    );
    let res = app
        .admin_post("/admin/tenants/www/move", json!({"to": "database"}))
        .await?;
    problem(res, StatusCode::CONFLICT).await?;
    let res = app
        .admin_post(
            "/admin/tenants",
            json!({"slug": "www", "name": "Another www"}),
        )
        .await?;
    problem(res, StatusCode::CONFLICT).await?;

    // Nothing changed: the tenant as it was, its row, its member.
    let (status, after) = app.admin_get("/admin/tenants/www").await?;
    ensure!(
        status == StatusCode::OK && after == before,
        "{before} -> {after}"
    );
    ensure!(app.project_names("www", &token).await? == ["Landing page"]);
    // A dynamic tenant still deletes.
    app.tenant_with_owner("globex").await?;
    let res = app.admin_delete("/admin/tenants/globex").await?;
    ensure!(res.status() == StatusCode::NO_CONTENT, "{}", res.status());
    app.finish().await
}

/// Runs `sql` on the test's own database (the control catalog and the accounts).
async fn on_control(app: &TestApp, sql: &str) -> Result<()> {
    use tenancy_core::sea_orm::ConnectionTrait;
    let conn = app
        .db
        .as_ref()
        .context("the test database")?
        .admin()
        .await?;
    conn.execute_unprepared(sql).await?;
    conn.close().await?;
    Ok(())
}

/// The owner's token is the last write of a sign-up, after its tenant exists: when it fails
/// (here a trigger refuses it), the tenant is deleted again and the owner is not kept, so the
/// same sign-up succeeds once the fault is gone.
async fn a_sign_up_that_fails_after_its_tenant_keeps_nothing(strategy: Strategy) -> Result<()> {
    let app = spawn_app_with(strategy, with_statics).await?;
    on_control(
        &app,
        "CREATE FUNCTION tenancy.refuse_token() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected: no token today'; END $$; \
         CREATE TRIGGER refuse_token BEFORE INSERT ON tenancy.api_tokens \
         FOR EACH ROW EXECUTE FUNCTION tenancy.refuse_token()",
    )
    .await?;
    let sign_up = || {
        app.client
            .post(app.url("/t/www/signup"))
            .json(&signup_body("initrode", "bill@initrode.example"))
            .send()
    };
    let res = tokio::time::timeout(std::time::Duration::from_secs(30), sign_up())
        .await
        .context("the failed sign-up did not answer within 30 s")??;
    problem(res, StatusCode::INTERNAL_SERVER_ERROR).await?;
    let (status, kept) = app.admin_get("/admin/tenants/initrode").await?;
    ensure!(
        status == StatusCode::NOT_FOUND,
        "the tenant was kept: {kept}"
    );
    ensure!(
        users_named(&app, "bill@initrode.example").await? == 0,
        "the owner was kept"
    );

    // Without the fault the same slug and email sign up: nothing of the first try is in the way
    // (a schema or database left behind would refuse the slug).
    on_control(&app, "DROP TRIGGER refuse_token ON tenancy.api_tokens").await?;
    let res = sign_up().await?;
    ensure!(
        res.status() == StatusCode::CREATED,
        "again: {}",
        res.status()
    );
    let signed: Value = res.json().await?;
    let token = signed["token"]["token"].as_str().context("token")?;
    app.project("initrode", token, "Stapler inventory").await?;
    ensure!(app.project_names("initrode", token).await? == ["Stapler inventory"]);
    app.finish().await
}
