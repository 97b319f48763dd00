//! Run with `cargo bench -p tenancy-benches --bench migrate_all`.
//!
//! `migrate_all` over `N` tenants (the id of each result), per strategy (separate-db: 100 and
//! 200 tenant databases; the others: 100 and 1,000 tenants):
//! - `nothing_pending`: every tenant is up to date; the run must find that out quickly;
//! - `add_column`: one new `ALTER TABLE projects ADD COLUMN` migration for every tenant (and
//!   the template). Each iteration opens the store with one more such migration than the
//!   last, outside the timed part, so every timed run has exactly one column to add everywhere.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tenancy_core::{MigrateOptions, Strategy, TenantStore};
use tenancy_testkit::TestDatabase;

/// Tenants migrated at once: the stores' default.
const CONCURRENCY: usize = 4;

fn migrate_all(c: &mut Criterion) {
    let rt = tenancy_benches::runtime();
    let test = tenancy_benches::test_mode();
    let mut group = c.benchmark_group("migrate_all");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for strategy in tenancy_benches::strategies() {
        // A database per tenant costs ~8 MB and ~60 ms to create: 200 of them, not 1,000.
        let sizes: &[usize] = match (test, strategy) {
            (true, _) => &[3],
            (false, Strategy::SeparateDb) => &[100, 200],
            (false, _) => &[100, 1_000],
        };
        for &n in sizes {
            let setup = rt.block_on(async {
                let db = TestDatabase::create().await?;
                let store = tenancy_benches::open_store(
                    strategy,
                    &db,
                    tenancy_benches::migrations_with_columns(0),
                )
                .await?;
                tenancy_benches::tenants(store.as_ref(), "t", n, 8).await?;
                anyhow::Ok((db, store))
            });
            let (db, store) = setup
                .unwrap_or_else(|e| panic!("bench set-up failed (is DATABASE_URL set?): {e:#}"));
            let options = MigrateOptions {
                concurrency: CONCURRENCY,
            };

            group.bench_function(
                BenchmarkId::new(format!("nothing_pending/{strategy}"), n),
                |b| {
                    b.to_async(&rt).iter(|| {
                        let store = store.clone();
                        async move {
                            let report = store.migrate_all(options).await.expect("migrate");
                            assert!(report.is_success() && report.up_to_date == n);
                            report
                        }
                    })
                },
            );

            let mut columns = 0;
            group.bench_function(BenchmarkId::new(format!("add_column/{strategy}"), n), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let first = columns;
                    columns += usize::try_from(iters).unwrap_or(usize::MAX);
                    let db = &db;
                    async move {
                        let mut total = Duration::ZERO;
                        for k in 0..iters {
                            let extra = first + usize::try_from(k).unwrap_or(0) + 1;
                            let store: std::sync::Arc<dyn TenantStore> =
                                tenancy_benches::open_store(
                                    strategy,
                                    db,
                                    tenancy_benches::migrations_with_columns(extra),
                                )
                                .await
                                .expect("store");
                            let start = Instant::now();
                            let report = store.migrate_all(options).await.expect("migrate");
                            total += start.elapsed();
                            assert!(report.is_success(), "{report:?}");
                        }
                        total
                    }
                })
            });
            rt.block_on(async {
                drop(store);
                db.drop_database().await.ok();
            });
        }
    }
    group.finish();
}

criterion_group!(benches, migrate_all);
criterion_main!(benches);
