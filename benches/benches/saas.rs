//! Run with `cargo bench -p tenancy-benches --bench saas`.
//!
//! What the features a SaaS needs once customers arrive cost, per strategy, each beside the
//! same work without them (the `bare` row of its group):
//! - `saas/quota`: creating one project in a transaction scope and committing (`bare`), and the
//!   same after `Plan::ensure_room` (`quota`: the tenant's quota lock and a count of its
//!   projects, under a limit of 1,000,000), with 50 projects in the tenant and with 10,000 (the
//!   count reads every one: its cost grows with the tenant's rows); each row written is
//!   deleted again outside the timed part, so the tenant's size stays as stated;
//! - `saas/usage`: one tenant's usage (`usage`: `TenantStore::usage`, its storage read from the
//!   database and this process's statement counts; what `GET /admin/tenants/{slug}/usage`
//!   costs), beside one scoped page of its projects (`bare`: a request's read); and `meter`:
//!   the busiest 10 of the tenants metered by the runs above (`busiest`, what each `/metrics`
//!   scrape sorts) beside one tenant's counts (`bare`);
//! - `saas/every_tenant`: a task that reads one page of projects run for every one of 1,000
//!   tenants by `run_for_every_tenant` (`runner`, four at a time on the server, each outcome
//!   recorded), beside the same 1,000 scoped reads four at a time with no runner (`bare`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use tenancy_core::{
    Limits, PageRequest, Plan, RunOptions, ScopeMode, Tenant, TenantStore, run_for_every_tenant,
};
use tenancy_example::projects::{self, NewProject};
use tenancy_testkit::TestDatabase;

/// Projects the measured tenant holds (the free plan allows 100).
const PROJECTS: usize = 50;
/// Projects the large tenant holds: what a quota's count costs on a big table.
const LARGE: usize = 10_000;

fn plan() -> Plan {
    Plan {
        name: "bench".into(),
        limits: Limits {
            rows: BTreeMap::from([("projects".to_owned(), 1_000_000)]),
            storage_bytes: None,
        },
    }
}

fn new_project() -> NewProject {
    NewProject {
        name: "bench".into(),
        description: String::new(),
    }
}

/// Creates a project (after `plan`'s check) and commits; returns its id.
async fn create(store: &dyn TenantStore, t: &Tenant, plan: Option<&Plan>) -> uuid::Uuid {
    let scope = store.scope(t).await.expect("scope");
    if let Some(plan) = plan {
        plan.ensure_room(&scope, "projects", 1).await.expect("room");
    }
    let made = projects::create(&scope, new_project())
        .await
        .expect("create");
    scope.commit().await.expect("commit");
    made.id
}

async fn read_page(store: &dyn TenantStore, t: &Tenant) -> tenancy_core::Result<()> {
    let scope = store.scope_with(t, ScopeMode::ReadOnly).await?;
    projects::list(&scope, PageRequest::first(10)).await?;
    Ok(())
}

fn saas(c: &mut Criterion) {
    let rt = tenancy_benches::runtime();
    let test = tenancy_benches::test_mode();
    let many = if test { 3 } else { 1_000 };
    for strategy in tenancy_benches::strategies() {
        let setup = rt.block_on(async {
            let db = TestDatabase::create().await?;
            let store =
                tenancy_benches::open_store(strategy, &db, tenancy_example::migrations()).await?;
            let tenants = tenancy_benches::tenants(store.as_ref(), "t", many, 8).await?;
            tenancy_benches::seed_projects(store.scope(&tenants[0]).await?, PROJECTS).await?;
            let large = tenancy_benches::tenant(store.as_ref(), "large").await?;
            let rows = if test { 3 } else { LARGE };
            tenancy_benches::seed_projects(store.scope(&large).await?, rows).await?;
            anyhow::Ok((db, store, tenants, large))
        });
        let (db, store, tenants, large) =
            setup.unwrap_or_else(|e| panic!("bench set-up failed (is DATABASE_URL set?): {e:#}"));
        let one = tenants[0].clone();
        let plan = plan();

        // A write's cost with and without the check, at two sizes of the table checked: the
        // row written is deleted again outside the timed part, so the size stays as set.
        let mut group = c.benchmark_group("saas/quota");
        group
            .sample_size(50)
            .measurement_time(Duration::from_secs(5));
        for (at, tenant) in [(PROJECTS, &one), (LARGE, &large)] {
            let variants: &[(&str, Option<&Plan>)] = if at == PROJECTS {
                &[("bare", None), ("quota", Some(&plan))]
            } else {
                &[("quota", Some(&plan))]
            };
            for &(variant, plan) in variants {
                let id = BenchmarkId::new(format!("{strategy}/{variant}"), format!("{at} rows"));
                group.bench_function(id, |b| {
                    b.to_async(&rt).iter_custom(|iters| {
                        let (store, tenant) = (store.clone(), tenant.clone());
                        async move {
                            let mut timed = Duration::ZERO;
                            for _ in 0..iters {
                                let started = std::time::Instant::now();
                                let made = create(store.as_ref(), &tenant, plan).await;
                                timed += started.elapsed();
                                let scope = store.scope(&tenant).await.expect("scope");
                                projects::delete(&scope, made).await.expect("delete");
                                scope.commit().await.expect("commit");
                            }
                            timed
                        }
                    })
                });
            }
        }
        group.finish();

        let mut group = c.benchmark_group("saas/usage");
        group
            .sample_size(50)
            .measurement_time(Duration::from_secs(5));
        group.bench_function(BenchmarkId::new(format!("{strategy}/bare"), "page"), |b| {
            b.to_async(&rt)
                .iter(|| async { read_page(store.as_ref(), &one).await.expect("read") })
        });
        group.bench_function(
            BenchmarkId::new(format!("{strategy}/usage"), "usage"),
            |b| {
                b.to_async(&rt)
                    .iter(|| async { store.usage(&one).await.expect("usage") })
            },
        );
        group.finish();

        // The runner runs for every tenant of the catalog: the large one goes first.
        rt.block_on(store.delete_tenant(large.id))
            .unwrap_or_else(|e| panic!("deleting the large tenant: {e:#}"));
        let mut group = c.benchmark_group("saas/every_tenant");
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(20));
        let all = Arc::new(tenants.clone());
        group.bench_function(BenchmarkId::new(format!("{strategy}/bare"), many), |b| {
            b.to_async(&rt).iter(|| {
                let (store, all) = (store.clone(), all.clone());
                async move {
                    futures::stream::iter(all.iter())
                        .map(|t| read_page(store.as_ref(), t))
                        .buffer_unordered(4)
                        .for_each(|r| async move { r.expect("read") })
                        .await
                }
            })
        });
        let runs = AtomicUsize::new(0);
        group.bench_function(BenchmarkId::new(format!("{strategy}/runner"), many), |b| {
            b.to_async(&rt).iter(|| {
                let store = store.clone();
                let run = format!("bench-{}", runs.fetch_add(1, Ordering::Relaxed));
                async move {
                    let report = run_for_every_tenant(
                        store.as_ref(),
                        &RunOptions::new(run),
                        |_, scope| async move {
                            projects::list(&scope, PageRequest::first(10)).await?;
                            scope.commit().await
                        },
                        &|_| {},
                    )
                    .await
                    .expect("run");
                    assert_eq!(report.counts().0, many, "{report:?}");
                }
            })
        });
        group.finish();
        rt.block_on(async {
            drop(store);
            db.drop_database().await.ok();
        });
    }

    // The meter, as the runs above filled it (every tenant of every strategy): the busiest 10,
    // as each /metrics scrape takes them, beside one tenant's counts.
    let (metered, _) = tenancy_core::usage::busiest(usize::MAX);
    let first = metered.first().map(|(t, _)| *t).unwrap_or_default();
    let mut group = c.benchmark_group("saas/usage");
    group.bench_function(BenchmarkId::new("meter/bare", "one tenant"), |b| {
        b.iter(|| tenancy_core::usage::statements_of(first))
    });
    group.bench_function(
        BenchmarkId::new("meter/busiest", format!("10 of {}", metered.len())),
        |b| b.iter(|| tenancy_core::usage::busiest(10)),
    );
    group.finish();
}

criterion_group!(benches, saas);
criterion_main!(benches);
