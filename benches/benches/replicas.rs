//! Run with `cargo bench -p tenancy-benches --bench replicas`.
//!
//! Reads from a streaming replica beside the same reads from the primary, on one machine (a
//! primary of the bench's own and a standby made from it with `pg_basebackup -R`), per
//! strategy:
//! - `replica/read`: one page of a tenant's projects through a read-only scope, on the primary
//!   (`bare`: the store has no replica) and on the replica (`replica`);
//! - `replica/after_write`: a project written and committed, then a page read that must see
//!   it: on the primary (`bare`), and through the replica with the write's position
//!   (`replica`: the read waits for the standby to replay past the write, at most 100 ms,
//!   then goes to the primary), what read-your-writes costs a writer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tenancy_core::{PageRequest, ReplicaOptions, Strategy, Tenant, TenantStore};
use tenancy_demo::strategy::StoreSettings;
use tenancy_example::projects::{self, NewProject};
use tenancy_testkit::{Replicated, TestDatabase};

const PROJECTS: usize = 20;

async fn read(store: &dyn TenantStore, t: &Tenant, after: Option<tenancy_core::Lsn>) -> usize {
    let scope = store.scope_read(t, after).await.expect("scope");
    projects::list(&scope, PageRequest::first(10))
        .await
        .expect("read")
        .items
        .len()
}

async fn write(store: &dyn TenantStore, t: &Tenant, n: usize) -> Option<tenancy_core::Lsn> {
    let scope = store.scope(t).await.expect("scope");
    projects::create(&scope, NewProject::named(format!("w{n}")))
        .await
        .expect("write");
    scope.commit().await.expect("commit");
    store.write_lsn(t).await.expect("position")
}

fn replicas(c: &mut Criterion) {
    let rt = tenancy_benches::runtime();
    let strategies: Vec<Strategy> = tenancy_benches::strategies().into_iter().collect();
    if strategies.is_empty() {
        return;
    }
    let servers = Replicated::start().expect("a primary and its standby (see the testkit)");
    for strategy in strategies {
        let setup = rt.block_on(async {
            let db = TestDatabase::create_at(&servers.primary_url()).await?;
            let primary =
                tenancy_benches::open_store(strategy, &db, tenancy_example::migrations()).await?;
            let settings = StoreSettings {
                replica: Some(ReplicaOptions::new(servers.standby_url(db.name()))),
                ..StoreSettings::default()
            };
            let replicated = tenancy_demo::strategy::open(strategy, db.url(), &settings).await?;
            let t = tenancy_benches::tenant(primary.as_ref(), "reader").await?;
            tenancy_benches::seed_projects(primary.scope(&t).await?, PROJECTS).await?;
            servers.caught_up().await?;
            anyhow::Ok((db, primary, replicated, t))
        });
        let (db, primary, replicated, t) =
            setup.unwrap_or_else(|e| panic!("bench set-up failed (is DATABASE_URL set?): {e:#}"));
        let on_replica = rt.block_on(async {
            // A tenant created less than three seconds ago is read from the primary.
            tokio::time::sleep(Duration::from_millis(3_100)).await;
            replicated
                .scope_read(&t, None)
                .await
                .map(|s| s.is_on_replica())
        });
        assert!(
            matches!(on_replica, Ok(true)),
            "the replica serves the reads"
        );

        let mut group = c.benchmark_group("replica/read");
        group
            .sample_size(50)
            .measurement_time(Duration::from_secs(5));
        for (variant, store) in [("bare", &primary), ("replica", &replicated)] {
            group.bench_function(
                BenchmarkId::new(format!("{strategy}/{variant}"), "page"),
                |b| {
                    b.to_async(&rt)
                        .iter(|| async { read(store.as_ref(), &t, None).await })
                },
            );
        }
        group.finish();

        let written = AtomicUsize::new(0);
        let mut group = c.benchmark_group("replica/after_write");
        group
            .sample_size(30)
            .measurement_time(Duration::from_secs(5));
        for (variant, store) in [("bare", &primary), ("replica", &replicated)] {
            group.bench_function(
                BenchmarkId::new(format!("{strategy}/{variant}"), "write then read"),
                |b| {
                    b.to_async(&rt).iter(|| async {
                        let n = written.fetch_add(1, Ordering::Relaxed);
                        let after = write(store.as_ref(), &t, n).await;
                        read(store.as_ref(), &t, after).await
                    })
                },
            );
        }
        group.finish();
        rt.block_on(async {
            drop((primary, replicated));
            db.drop_database().await.ok();
        });
    }
    servers.remove().ok();
}

criterion_group!(benches, replicas);
criterion_main!(benches);
