//! Read replicas through the demo: a primary of the test's own and a streaming standby made
//! from it (`pg_basebackup -R`). The GET routes' reads reach the standby (its own statistics
//! count them) and show each tenant only its rows there; a write through a read-only scope
//! on the replica is refused and writes nothing; a caller who wrote through one process reads
//! its write through another while the standby's replay is paused, and once the standby lags
//! past its bound every read goes to the primary; a standby stopped and started is passed
//! over, with no failed request, and used again; a read the standby cancels for a recovery
//! conflict runs again on the primary.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenancy_core::entity::{ActiveModelInTenant, SelectInTenant};
use tenancy_core::sea_orm::ActiveValue::Set;
use tenancy_core::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tenancy_core::sea_orm::{ConnectionTrait, Database, Statement};
use tenancy_core::{Error, Slug, Strategy};
use tenancy_demo::scoped::LSN_HEADER;
use tenancy_demo::strategy::StoreSettings;
use tenancy_testkit::{Replicated, TestDatabase};

use crate::helpers::{TestApp, spawn_with};

/// Every strategy, hybrid too.
macro_rules! on_replicas {
    ($($name:ident),+ $(,)?) => {
        mod shared_schema {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(tenancy_core::Strategy::SharedSchema).await
                }
            )+
        }
        mod separate_schema {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(tenancy_core::Strategy::SeparateSchema).await
                }
            )+
        }
        mod separate_db {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(tenancy_core::Strategy::SeparateDb).await
                }
            )+
        }
        mod hybrid {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(tenancy_core::Strategy::Hybrid).await
                }
            )+
        }
    };
}

on_replicas!(
    a_read_the_standby_cancels_runs_again_on_the_primary,
    reads_reach_the_replica_and_stay_in_the_tenant,
    a_writer_reads_its_write_through_another_process,
    a_replica_stopped_then_started_is_passed_over_then_used_again
);

/// A primary, its standby and a database of the test's on them.
struct Pair {
    servers: Replicated,
    db: TestDatabase,
}

impl Pair {
    async fn start() -> Result<Self> {
        let servers = Replicated::start()?;
        let db = TestDatabase::create_at(&servers.primary_url()).await?;
        servers.caught_up().await?;
        Ok(Pair { servers, db })
    }

    /// Waits until the standby has everything, and the tenants are old enough for a replica
    /// to serve them (a tenant created less than twice `max_lag` and a second ago is read from
    /// the primary, whose standby may not have its schema or database yet).
    async fn settle(&self) -> Result<()> {
        self.servers.caught_up().await?;
        tokio::time::sleep(Duration::from_millis(3_100)).await;
        Ok(())
    }

    fn standby_url(&self) -> String {
        self.servers.standby_url(self.db.name())
    }

    /// The app on the primary, reading from the standby.
    async fn app(&self, strategy: Strategy) -> Result<TestApp> {
        let replica = self.standby_url();
        spawn_with(strategy, self.db.url(), move |s| {
            s.replica_url = Some(replica.into());
            s.sample_data = false;
        })
        .await
    }

    /// Transactions the standby counted in the test's database.
    async fn standby_transactions(&self) -> Result<i64> {
        let standby = Database::connect(self.servers.standby_url("postgres")).await?;
        let row = standby
            .query_one_raw(Statement::from_string(
                standby.get_database_backend(),
                // The test's database and the tenant databases named after it (separate-db).
                format!(
                    "SELECT coalesce(sum(xact_commit + xact_rollback), 0)::int8 \
                     FROM pg_stat_database WHERE datname = '{0}' OR datname LIKE '{0}\\_%'",
                    self.db.name()
                ),
            ))
            .await?
            .context("the database's statistics on the standby")?;
        standby.close().await.ok();
        Ok(row.try_get_by_index(0)?)
    }

    /// Waits (up to fifteen seconds: a backend that goes idle reports its counts within ten)
    /// until the standby counted `more` transactions beyond `before`.
    async fn standby_counted(&self, before: i64, more: i64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = self.standby_transactions().await?;
            if now - before >= more {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the standby counted {} transactions, not {more}",
                    now - before
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn remove(self) -> Result<()> {
        self.servers.remove()
    }
}

async fn names(app: &TestApp, slug: &str, token: &str, after: Option<&str>) -> Result<Vec<String>> {
    let mut req = app.tenant(Method::GET, slug, "/projects", token);
    if let Some(lsn) = after {
        req = req.header(LSN_HEADER, lsn);
    }
    let res = req.send().await?;
    ensure!(res.status() == StatusCode::OK, "read: {}", res.status());
    let page: Value = res.json().await?;
    Ok(page["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect())
}

/// Twenty reads of alpha's projects: the standby counts them, and they show alpha's rows
/// only. Through the store: a read-only scope is on the replica, sees only its tenant's rows,
/// and refuses a write, which writes nothing.
async fn reads_reach_the_replica_and_stay_in_the_tenant(strategy: Strategy) -> Result<()> {
    let pair = Pair::start().await?;
    let app = pair.app(strategy).await?;
    let alpha = app.tenant_with_owner("alpha").await?;
    let bravo = app.tenant_with_owner("bravo").await?;
    for name in ["a1", "a2"] {
        app.project("alpha", &alpha, name).await?;
    }
    app.project("bravo", &bravo, "b1").await?;
    pair.settle().await?;

    let before = pair.standby_transactions().await?;
    for _ in 0..20 {
        let seen = names(&app, "alpha", &alpha, None).await?;
        ensure!(seen == ["a1", "a2"], "alpha's rows only: {seen:?}");
    }
    pair.standby_counted(before, 20).await?;
    ensure!(names(&app, "bravo", &bravo, None).await? == ["b1"]);

    // The store itself.
    let settings = StoreSettings {
        replica: Some(tenancy_core::ReplicaOptions::new(pair.standby_url())),
        ..StoreSettings::default()
    };
    let store = tenancy_demo::strategy::open(strategy, pair.db.url(), &settings).await?;
    let a = store.tenant_by_slug(&Slug::parse("alpha")?).await?;
    let scope = store.scope_read(&a, None).await?;
    ensure!(scope.is_on_replica(), "a read-only scope on the replica");
    let seen =
        tenancy_example::projects::list(&scope, tenancy_core::PageRequest::first(50)).await?;
    ensure!(
        seen.items.iter().all(|p| p.tenant_id == a.id.as_uuid()) && seen.items.len() == 2,
        "alpha's rows only on the replica: {:?}",
        seen.items
    );
    // An entity's query through the scope, filtered by bravo's id: alpha's rows or none.
    let bravo_id = store.tenant_by_slug(&Slug::parse("bravo")?).await?.id;
    let asked = tenancy_example::project::Entity::find()
        .filter(tenancy_example::project::Column::TenantId.eq(bravo_id.as_uuid()))
        .all_in(&scope)
        .await?;
    ensure!(
        asked.is_empty(),
        "bravo's rows through alpha's replica scope: {asked:?}"
    );
    let written = tenancy_example::project::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        name: Set("never".into()),
        description: Set(String::new()),
        ..Default::default()
    }
    .insert_in(&scope)
    .await;
    ensure!(
        matches!(written, Err(Error::ReadOnly(_))),
        "a write on the replica's scope: {written:?}"
    );
    drop(scope);
    drop(store);
    ensure!(
        app.project_names("alpha", &alpha).await?.len() == 2,
        "nothing written"
    );
    app.finish().await?;
    pair.remove().await
}

/// Two processes on the pair; the standby's replay paused. A writes a project through A and
/// keeps the response's position; its read through B with that position shows the project;
/// a second later, past the lag bound, so does a read without it.
async fn a_writer_reads_its_write_through_another_process(strategy: Strategy) -> Result<()> {
    let pair = Pair::start().await?;
    let a = pair.app(strategy).await?;
    let b = pair.app(strategy).await?;
    let token = a.tenant_with_owner("writer").await?;
    a.project("writer", &token, "before").await?;
    pair.settle().await?;
    ensure!(names(&b, "writer", &token, None).await? == ["before"]);

    pair.servers.pause_replay().await?;
    let res = a
        .tenant(Method::POST, "writer", "/projects", &token)
        .json(&json!({"name": "after"}))
        .send()
        .await?;
    ensure!(
        res.status() == StatusCode::CREATED,
        "write: {}",
        res.status()
    );
    let lsn = res
        .headers()
        .get(LSN_HEADER)
        .context("a write on a store with a replica answers with its position")?
        .to_str()?
        .to_owned();
    let seen = names(&b, "writer", &token, Some(&lsn)).await?;
    ensure!(
        seen == ["before", "after"],
        "B, given the write's position, reads it while the standby is paused: {seen:?}"
    );
    // Without the position, past the lag bound (a second) the standby, still paused, is
    // passed over for the primary.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let seen = names(&b, "writer", &token, None).await?;
    ensure!(
        seen == ["before", "after"],
        "a standby lagging past its bound serves no read: {seen:?}"
    );
    let res = b
        .tenant(Method::GET, "writer", "/projects", &token)
        .header(LSN_HEADER, "not a position")
        .send()
        .await?;
    ensure!(res.status() == StatusCode::BAD_REQUEST, "{}", res.status());
    pair.servers.resume_replay().await?;
    b.finish().await?;
    a.finish().await?;
    pair.remove().await
}

/// Reads every 20 ms while the standby is stopped and started again: not one fails, none
/// waits longer than the acquire timeout, and once it is back the standby serves them again.
async fn a_replica_stopped_then_started_is_passed_over_then_used_again(
    strategy: Strategy,
) -> Result<()> {
    let pair = Pair::start().await?;
    let app = pair.app(strategy).await?;
    let token = app.tenant_with_owner("steady").await?;
    app.project("steady", &token, "kept").await?;
    pair.settle().await?;

    let reads = |n: usize| {
        let (app, token) = (&app, &token);
        async move {
            let mut slowest = Duration::ZERO;
            for _ in 0..n {
                let started = Instant::now();
                let seen = names(app, "steady", token, None).await?;
                slowest = slowest.max(started.elapsed());
                ensure!(seen == ["kept"], "{seen:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(slowest)
        }
    };
    reads(10).await?;
    pair.servers.stop_standby()?;
    let slowest = reads(50).await?;
    ensure!(
        slowest < Duration::from_secs(5),
        "a read waited {slowest:?}, past the acquire timeout"
    );
    pair.servers.start_standby()?;
    // Once the time a failed replica is left alone has passed, reads reach it again: five
    // seconds of reads, of which the standby serves at least ten.
    let before = pair.standby_transactions().await?;
    reads(200).await?;
    pair.standby_counted(before, 10).await?;
    app.finish().await?;
    pair.remove().await
}

/// A read of two seconds on the replica; meanwhile the primary takes an exclusive lock on the
/// table it reads, which the standby must replay: after a second it cancels the read (a
/// recovery conflict, SQLSTATE 40001), and the scope runs it again on the primary.
async fn a_read_the_standby_cancels_runs_again_on_the_primary(strategy: Strategy) -> Result<()> {
    use tenancy_core::sea_orm::sea_query::{Alias, Asterisk, Expr};
    let pair = Pair::start().await?;
    let app = pair.app(strategy).await?;
    let token = app.tenant_with_owner("busy").await?;
    for name in ["one", "two"] {
        app.project("busy", &token, name).await?;
    }
    pair.settle().await?;
    let settings = StoreSettings {
        replica: Some(tenancy_core::ReplicaOptions::new(pair.standby_url())),
        ..StoreSettings::default()
    };
    let store = tenancy_demo::strategy::open(strategy, pair.db.url(), &settings).await?;
    let t = store.tenant_by_slug(&Slug::parse("busy")?).await?;
    // Where the tenant's projects are on the primary.
    let (url, table) = match &t.placement {
        tenancy_core::Placement::Schema { schema } => {
            (pair.db.url().to_owned(), format!("\"{schema}\".projects"))
        }
        tenancy_core::Placement::Database { database, .. } => {
            let mut u = url::Url::parse(pair.db.url())?;
            u.set_path(database);
            (u.to_string(), "projects".to_owned())
        }
        _ => (pair.db.url().to_owned(), "public.projects".to_owned()),
    };
    let scope = store.scope_read(&t, None).await?;
    ensure!(scope.is_on_replica(), "the read starts on the replica");
    let lock = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let primary = Database::connect(url).await?;
        primary
            .execute_unprepared(&format!(
                "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; COMMIT"
            ))
            .await?;
        primary.close().await.ok();
        anyhow::Ok(())
    });
    let mut slow = scope.select("projects", "p");
    slow.column((Alias::new("p"), Asterisk))
        .expr(Expr::cust("pg_sleep(2)"));
    let read: Result<Vec<tenancy_example::project::Model>, Error> = scope.fetch_all(&slow).await;
    lock.await??;
    let read = read.context("the read cancelled on the standby, run again on the primary")?;
    ensure!(read.len() == 2, "the tenant's two projects: {read:?}");
    scope.commit().await?;
    drop(store);
    app.finish().await?;
    pair.remove().await
}
