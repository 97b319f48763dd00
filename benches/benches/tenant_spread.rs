//! Run with `cargo bench -p tenancy-benches --bench tenant_spread`.
//!
//! Throughput of point reads spread uniformly over `N` tenants (the id of each result: 1, 20,
//! 100 and 1,000), and skewed over the 1,000 (`1000-skewed`: a fifth of the tenants get four
//! fifths of the reads, as real traffic tends to), per strategy, eight reads in flight. Each tenant holds 10 projects. One
//! tenant is the best case for every cache; a thousand tenants show what each strategy pays
//! for many: nothing extra for shared tables, more catalog entries per connection for a
//! schema each, and, for a database each under a budget of 20 connections, pools that must be
//! closed and opened as the load moves between databases.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use tenancy_core::{Tenant, TenantStore};
use tenancy_testkit::TestDatabase;
use uuid::Uuid;

/// Reads per timed iteration.
const BATCH: usize = 64;
const IN_FLIGHT: usize = 8;
const PROJECTS: usize = 10;

fn tenant_spread(c: &mut Criterion) {
    let rt = tenancy_benches::runtime();
    let test = tenancy_benches::test_mode();
    let mut group = c.benchmark_group("tenant_spread");
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    for strategy in tenancy_benches::strategies() {
        let sizes: &[usize] = if test { &[1, 3] } else { &[1, 20, 100, 1_000] };
        // One database grows tenant by tenant: each size adds to the last.
        let setup = rt.block_on(async {
            let db = TestDatabase::create().await?;
            let store =
                tenancy_benches::open_store(strategy, &db, tenancy_example::migrations()).await?;
            anyhow::Ok((db, store))
        });
        let (db, store) =
            setup.unwrap_or_else(|e| panic!("bench set-up failed (is DATABASE_URL set?): {e:#}"));
        let mut tenants: Vec<(Tenant, Vec<Uuid>)> = Vec::new();
        for &n in sizes {
            let grown = rt.block_on(grow(store.clone(), tenants.len(), n));
            tenants.extend(grown.unwrap_or_else(|e| panic!("seeding {n} tenants: {e:#}")));
            let skews: &[Pick] = if n == *sizes.last().unwrap_or(&n) {
                &[Pick::Uniform, Pick::Skewed]
            } else {
                &[Pick::Uniform]
            };
            for &pick in skews {
                let tenants = Arc::new(tenants[..n].to_vec());
                let next = AtomicUsize::new(0);
                let id = match pick {
                    Pick::Uniform => BenchmarkId::new(strategy.as_str(), n),
                    Pick::Skewed => BenchmarkId::new(strategy.as_str(), format!("{n}-skewed")),
                };
                group.bench_function(id, |b| {
                    b.to_async(&rt).iter(|| {
                        let start = next.fetch_add(BATCH, Ordering::Relaxed);
                        let (store, tenants) = (store.clone(), tenants.clone());
                        async move {
                            futures::stream::iter(start..start + BATCH)
                                .map(|k| {
                                    let (t, ids) = &tenants[pick.tenant(k, tenants.len())];
                                    let (store, id) = (store.clone(), ids[k % ids.len()]);
                                    async move {
                                        tenancy_benches::read_project(store.as_ref(), t, id).await;
                                    }
                                })
                                .buffer_unordered(IN_FLIGHT)
                                .collect::<Vec<()>>()
                                .await
                        }
                    })
                });
            }
        }
        rt.block_on(async {
            drop(store);
            db.drop_database().await.ok();
        });
    }
    group.finish();
}

/// How the k-th read picks its tenant out of `n`.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// Every tenant alike.
    Uniform,
    /// The first fifth of the tenants get four reads in five.
    Skewed,
}

impl Pick {
    fn tenant(self, k: usize, n: usize) -> usize {
        // A multiplicative hash spreads consecutive k over all tenants.
        let h = k.wrapping_mul(2_654_435_761);
        match self {
            Pick::Uniform => h % n,
            Pick::Skewed => {
                let hot = (n / 5).max(1);
                if h % 5 < 4 || hot == n {
                    (h / 5) % hot
                } else {
                    hot + (h / 5) % (n - hot)
                }
            }
        }
    }
}

/// Creates tenants `have..want`, each with its projects.
async fn grow(
    store: Arc<dyn TenantStore>,
    have: usize,
    want: usize,
) -> anyhow::Result<Vec<(Tenant, Vec<Uuid>)>> {
    futures::stream::iter(have..want)
        .map(|i| {
            let store = store.clone();
            async move {
                let t = tenancy_benches::tenant(store.as_ref(), &format!("t{i}")).await?;
                let rows = tenancy_benches::seed_projects(store.scope(&t).await?, PROJECTS).await?;
                anyhow::Ok((t, rows.into_iter().map(|p| p.id).collect()))
            }
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

criterion_group!(benches, tenant_spread);
criterion_main!(benches);
