//! The connection budget under load: 300 tenant databases, a budget of 20 connections, and
//! concurrent traffic over all of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Result, ensure};
use futures::StreamExt;
use tenancy_core::sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tenancy_core::{NewTenant, Slug, Tenant, TenantStore};
use tenancy_core::{PageRequest, PoolOptions};
use tenancy_example::projects::{self, NewProject};
use tenancy_separate_db::{SeparateDbOptions, SeparateDbStore};
use tenancy_testkit::TestDatabase;

const TENANTS: usize = 300;
/// Every connection of the store: the budget for tenant databases plus the control pool.
const BUDGET: u32 = 20;
const CONTROL: u32 = 2;
const WORKERS: usize = 24;
const OPS_PER_WORKER: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_tenants_never_exceed_twenty_connections() -> Result<()> {
    let db = TestDatabase::create().await?;
    let app = format!("budget-{}", db.name());
    let store = SeparateDbStore::connect(
        db.url(),
        SeparateDbOptions {
            migrations: tenancy_example::migrations(),
            connections_per_server: BUDGET - CONTROL,
            control_connections: CONTROL,
            pool: PoolOptions {
                application_name: Some(app.clone()),
                ..SeparateDbOptions::default().pool
            },
            budget_timeout: Duration::from_secs(30),
            ..Default::default()
        },
    )
    .await?;

    // Watch the server's view of the store's connections the whole time, creation included.
    let monitor = Database::connect(db.admin_url()).await?;
    let most = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (most, stop, app) = (most.clone(), stop.clone(), app.clone());
        async move {
            let count = || async {
                let row = monitor
                    .query_one_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1",
                        [app.clone().into()],
                    ))
                    .await?;
                anyhow::Ok(
                    row.map(|r| r.try_get::<i64>("", "n"))
                        .transpose()?
                        .unwrap_or(0),
                )
            };
            while !stop.load(Ordering::Relaxed) {
                let mut n = count().await?;
                if n > i64::from(BUDGET) {
                    // A slot the router closed to make room leaves its backend in the view
                    // for the moment the server takes to end it, beside the one opened in its
                    // place (seen once in a full test run: 21). Over the budget counts when
                    // it is still over 20 ms later, as a connection really held would be.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    n = n.min(count().await?);
                }
                most.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            monitor.close().await.ok();
            anyhow::Ok(())
        }
    });

    let tenants: Vec<Tenant> = futures::stream::iter(0..TENANTS)
        .map(|i| {
            let store = store.clone();
            async move {
                store
                    .create_tenant(NewTenant::new(Slug::parse(&format!("t{i}"))?, "t"))
                    .await
                    .map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let tenants = Arc::new(tenants);

    // Every worker walks all tenants with its own stride: writes and reads on cold and warm
    // pools, far more tenants than the budget can hold open.
    let results = futures::stream::iter(0..WORKERS)
        .map(|w| {
            let (store, tenants) = (store.clone(), tenants.clone());
            tokio::spawn(async move {
                for k in 0..OPS_PER_WORKER {
                    let t = &tenants[(w * 37 + k * 101) % TENANTS];
                    let scope = store.scope(t).await?;
                    projects::create(&scope, NewProject::named(format!("w{w}k{k}"))).await?;
                    let page = projects::list(&scope, PageRequest::default()).await?;
                    ensure!(!page.items.is_empty());
                    scope.commit().await?;
                }
                anyhow::Ok(())
            })
        })
        .buffer_unordered(WORKERS)
        .collect::<Vec<_>>()
        .await;
    stop.store(true, Ordering::Relaxed);
    watcher.await??;
    for r in results {
        r??;
    }

    // Every write landed: the projects of all tenants add up.
    let mut total = 0;
    for t in tenants.iter() {
        let scope = store.scope(t).await?;
        total += projects::list(
            &scope,
            PageRequest {
                limit: 500,
                after: None,
            },
        )
        .await?
        .items
        .len();
    }
    ensure!(total == WORKERS * OPS_PER_WORKER, "{total} projects found");

    let most = most.load(Ordering::Relaxed);
    eprintln!("most connections seen from the store: {most}");
    ensure!(
        most <= i64::from(BUDGET),
        "pg_stat_activity showed {most} connections from the store, budget {BUDGET}"
    );
    // The load really pressed on the budget (or this test could not fail).
    ensure!(
        most >= i64::from(BUDGET) / 2,
        "only {most} connections were ever open"
    );
    for (server, _, allotted) in store.open_pools() {
        ensure!(allotted <= BUDGET, "{server}: {allotted} allotted");
    }

    drop(store);
    db.drop_database().await
}

/// A budget of 20 connections for 20 tenants: one connection each fits, so once every tenant
/// has been served, reads spread over all of them (eight at a time) close no connection, and
/// the server never sees more than the budget and the control pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_tenants_fit_a_budget_of_twenty() -> Result<()> {
    const N: usize = 20;
    let db = TestDatabase::create().await?;
    let app = format!("fit-{}", db.name());
    let store = SeparateDbStore::connect(
        db.url(),
        SeparateDbOptions {
            migrations: tenancy_example::migrations(),
            connections_per_server: 20,
            control_connections: CONTROL,
            pool: PoolOptions {
                application_name: Some(app.clone()),
                ..SeparateDbOptions::default().pool
            },
            ..Default::default()
        },
    )
    .await?;
    let mut tenants = Vec::new();
    for i in 0..N {
        let t = store
            .create_tenant(NewTenant::new(Slug::parse(&format!("f{i}"))?, "f"))
            .await?;
        let scope = store.scope(&t).await?;
        projects::create(&scope, NewProject::named("p")).await?;
        scope.commit().await?;
        tenants.push(t);
    }
    // A first pass gives every tenant its connection (the maintenance database's gives way).
    for t in &tenants {
        let scope = store.scope(t).await?;
        projects::list(&scope, PageRequest::default()).await?;
    }
    let closed_before = store.slots_closed();
    let tenants = Arc::new(tenants);
    let results = futures::stream::iter(0..8)
        .map(|w| {
            let (store, tenants) = (store.clone(), tenants.clone());
            tokio::spawn(async move {
                for k in 0..100 {
                    let t = &tenants[(w * 7 + k * 3) % N];
                    let scope = store
                        .scope_with(t, tenancy_core::ScopeMode::Autocommit)
                        .await?;
                    let page = projects::list(&scope, PageRequest::default()).await?;
                    ensure!(
                        page.items.len() == 1,
                        "{} sees {} projects",
                        t.slug,
                        page.items.len()
                    );
                }
                anyhow::Ok(())
            })
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for r in results {
        r??;
    }
    let closed = store.slots_closed() - closed_before;
    let connections = store.connections().open;
    eprintln!("slots closed under spread reads: {closed}; connections open: {connections}");
    ensure!(closed == 0, "{closed} connections were closed to make room");
    ensure!(
        connections <= 20 + CONTROL,
        "{connections} connections open, budget 20 plus {CONTROL}"
    );
    for (server, slots, _) in store.open_pools() {
        ensure!(slots == N, "{server}: {slots} slots open for {N} tenants");
    }
    drop(store);
    db.drop_database().await
}
