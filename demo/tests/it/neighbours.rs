//! Noisy neighbours: a tenant or a token over its request rate gets 429 with Retry-After
//! while others are served; a tenant statement that runs too long is cancelled at the
//! statement timeout (503, nothing written) instead of holding its connection.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tenancy_core::Strategy;
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::{ConnectionTrait, Database, TransactionTrait};

use crate::helpers::{problem, spawn_app_with, tenant_table};

crate::per_strategy!(
    a_tenant_or_token_over_its_rate_gets_429_and_others_do_not,
    a_tenant_over_its_rate_waits_its_turn_within_the_queue,
    a_slow_statement_is_cut_at_the_statement_timeout,
);

async fn a_tenant_or_token_over_its_rate_gets_429_and_others_do_not(
    strategy: Strategy,
) -> Result<()> {
    let app = spawn_app_with(strategy, |s| {
        s.rate_limit.per_tenant = 5;
        s.rate_limit.per_token = 3;
        s.rate_limit.burst_seconds = 1.0;
        // Refused at once: what this test counts (the queue has its own test).
        s.rate_limit.queue_ms = 0;
    })
    .await?;
    let hot = app.tenant_with_owner("hot").await?;
    let quiet = app.tenant_with_owner("quiet").await?;
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for _ in 0..10 {
        let res = app
            .tenant(Method::GET, "hot", "/projects", &hot)
            .send()
            .await?;
        statuses.push(res.status());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after.push(
                res.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .context("a 429 without a Retry-After in seconds")?,
            );
            problem(res, StatusCode::TOO_MANY_REQUESTS).await?;
        }
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // The token's rate (3 a second) is the tighter one here.
    ensure!(
        statuses[..3].iter().all(|s| *s == StatusCode::OK) && limited >= 6,
        "ten requests at once with one token: {statuses:?}"
    );
    ensure!(retry_after.iter().all(|s| *s >= 1), "{retry_after:?}");
    // The quiet tenant, whose own rates are untouched, is served.
    for _ in 0..3 {
        let res = app
            .tenant(Method::GET, "quiet", "/projects", &quiet)
            .send()
            .await?;
        ensure!(
            res.status() == StatusCode::OK,
            "the quiet tenant: {}",
            res.status()
        );
    }
    // A second token of the hot tenant has its own token rate but shares the tenant's.
    let user = app.user("second@example.com").await?;
    app.grant("hot", &user, "member").await?;
    let second = app.token(&user).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut second_statuses = Vec::new();
    for token in [&hot, &hot, &hot, &second, &second, &second, &second] {
        second_statuses.push(
            app.tenant(Method::GET, "hot", "/projects", token)
                .send()
                .await?
                .status(),
        );
    }
    let ok = second_statuses
        .iter()
        .filter(|s| **s == StatusCode::OK)
        .count();
    ensure!(
        ok == 5 && second_statuses[6] == StatusCode::TOO_MANY_REQUESTS,
        "two tokens of one tenant share its five a second: {second_statuses:?}"
    );
    tenancy_testkit::fault_report(
        &format!("rate_limits-{strategy}"),
        &json!({
            "one_token_ten_requests": statuses.iter().map(|s| s.as_u16()).collect::<Vec<_>>(),
            "retry_after_secs": retry_after,
            "two_tokens_seven_requests": second_statuses.iter().map(|s| s.as_u16()).collect::<Vec<_>>(),
        }),
    )?;
    app.finish().await
}

async fn a_tenant_over_its_rate_waits_its_turn_within_the_queue(strategy: Strategy) -> Result<()> {
    let app = spawn_app_with(strategy, |s| {
        s.rate_limit.per_tenant = 5;
        s.rate_limit.burst_seconds = 1.0;
        s.rate_limit.queue_ms = 1_500;
    })
    .await?;
    let busy = app.tenant_with_owner("busy").await?;
    let quiet = app.tenant_with_owner("quiet").await?;
    // Ten at once at five a second: five now, the next five in turn over the next second,
    // every one served.
    let started = Instant::now();
    let sends = (0..10).map(|_| app.tenant(Method::GET, "busy", "/projects", &busy).send());
    let statuses: Vec<StatusCode> = futures::future::try_join_all(sends)
        .await?
        .iter()
        .map(|r| r.status())
        .collect();
    let took = started.elapsed();
    ensure!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "ten requests within a queue of 1.5 s at five a second: {statuses:?}"
    );
    ensure!(
        took >= Duration::from_millis(700),
        "ten requests at five a second were served in {took:?}: none waited its turn"
    );
    // Meanwhile the quiet tenant's rate is its own: served at once.
    let started = Instant::now();
    let res = app
        .tenant(Method::GET, "quiet", "/projects", &quiet)
        .send()
        .await?;
    ensure!(
        res.status() == StatusCode::OK && started.elapsed() < Duration::from_millis(500),
        "the quiet tenant: {} after {:?}",
        res.status(),
        started.elapsed()
    );
    // Twenty more at once: the last ones' turn is further than the queue, so they are refused
    // with the wait, and those that were served all fit in the queue.
    let sends = (0..20).map(|_| app.tenant(Method::GET, "busy", "/projects", &busy).send());
    let responses = futures::future::try_join_all(sends).await?;
    let refused = responses
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    ensure!(
        (5..=15).contains(&refused),
        "twenty at once with about a second's room in the queue: {refused} refused"
    );
    app.finish().await
}

async fn a_slow_statement_is_cut_at_the_statement_timeout(strategy: Strategy) -> Result<()> {
    let app = spawn_app_with(strategy, |s| {
        s.statement_timeout_ms = 300;
    })
    .await?;
    let token = app.tenant_with_owner("slow").await?;
    let neighbour = app.tenant_with_owner("fast").await?;
    let project = app.project("slow", &token, "before").await?;
    // Hold the project's row locked: the rename waits on it, as on any slow statement.
    let (url, table) = tenant_table(&app, "slow", "projects").await?;
    let db = Database::connect(&url).await?;
    let lock = db.begin().await?;
    lock.query_one_raw(stmt(
        &format!("SELECT id FROM {table} WHERE id = $1 FOR UPDATE"),
        [uuid::Uuid::parse_str(&project)?.into()],
    ))
    .await?
    .context("the project's row")?;
    let rename = || {
        app.tenant(
            Method::PATCH,
            "slow",
            &format!("/projects/{project}"),
            &token,
        )
        .json(&json!({"name": "after"}))
    };
    let start = Instant::now();
    let res = rename().timeout(Duration::from_secs(5)).send().await?;
    let took = start.elapsed();
    let retry = res.headers().contains_key("retry-after");
    let body = problem(res, StatusCode::SERVICE_UNAVAILABLE).await?;
    // Meanwhile a neighbour is served.
    ensure!(app.project_names("fast", &neighbour).await?.is_empty());
    lock.rollback().await?;
    db.close().await?;
    ensure!(retry, "the 503 carries Retry-After");
    ensure!(
        body["type"] == "/problems/statement-timeout",
        "the problem says why: {body}"
    );
    ensure!(
        took < Duration::from_secs(2),
        "the statement was cut after {took:?}, not at the 300 ms timeout"
    );
    ensure!(
        app.project_names("slow", &token).await? == ["before"],
        "the cancelled rename wrote nothing"
    );
    let res = rename().send().await?;
    ensure!(
        res.status() == StatusCode::OK,
        "once unlocked: {}",
        res.status()
    );
    tenancy_testkit::fault_report(
        &format!("statement_timeout-{strategy}"),
        &json!({ "timeout_ms": 300, "cancelled_after_ms": took.as_millis() }),
    )?;
    app.finish().await
}
