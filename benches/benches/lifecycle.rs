//! Run with `cargo bench -p tenancy-benches --bench lifecycle`.
//!
//! Creating and deleting one tenant, per strategy, in a database that already holds `N`
//! tenants (the id of each result). Creation includes everything a caller waits for: the
//! catalog row, the tenant's tables (a schema copied from the template, a database cloned from
//! the template database, or nothing for shared tables) and the switch to `ready`. Deletion
//! is the whole two-phase delete.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tenancy_testkit::TestDatabase;

fn lifecycle(c: &mut Criterion) {
    let rt = tenancy_benches::runtime();
    let existing = if tenancy_benches::test_mode() { 2 } else { 100 };
    let mut group = c.benchmark_group("lifecycle");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    for strategy in tenancy_benches::strategies() {
        let setup = rt.block_on(async {
            let db = TestDatabase::create().await?;
            let store =
                tenancy_benches::open_store(strategy, &db, tenancy_example::migrations()).await?;
            tenancy_benches::tenants(store.as_ref(), "existing", existing, 4).await?;
            anyhow::Ok((db, store))
        });
        let (db, store) =
            setup.unwrap_or_else(|e| panic!("bench set-up failed (is DATABASE_URL set?): {e:#}"));
        let next = AtomicUsize::new(0);

        group.bench_function(
            BenchmarkId::new(format!("create/{strategy}"), existing),
            |b| {
                b.to_async(&rt).iter(|| {
                    let slug = format!("new{}", next.fetch_add(1, Ordering::Relaxed));
                    let store = store.clone();
                    async move {
                        tenancy_benches::tenant(store.as_ref(), &slug)
                            .await
                            .expect("create")
                    }
                })
            },
        );
        group.bench_function(
            BenchmarkId::new(format!("delete/{strategy}"), existing),
            |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let store = store.clone();
                    let first = next.fetch_add(
                        usize::try_from(iters).unwrap_or(usize::MAX),
                        Ordering::Relaxed,
                    );
                    async move {
                        let mut victims = Vec::new();
                        for i in 0..iters {
                            let slug = format!("gone{}", first as u64 + i);
                            victims.push(
                                tenancy_benches::tenant(store.as_ref(), &slug)
                                    .await
                                    .expect("create"),
                            );
                        }
                        let start = Instant::now();
                        for t in victims {
                            store.delete_tenant(t.id).await.expect("delete");
                        }
                        start.elapsed()
                    }
                })
            },
        );
        rt.block_on(async {
            drop(store);
            db.drop_database().await.ok();
        });
    }
    group.finish();
}

criterion_group!(benches, lifecycle);
criterion_main!(benches);
