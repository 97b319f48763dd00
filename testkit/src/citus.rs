//! A Citus cluster for the suites that run shared-schema and separate-schema distributed: a
//! coordinator and two workers of the test process's own, or a cluster of the user's named by
//! `CITUS_URL`.
//!
//! Without `CITUS_URL` the first test that asks for one starts three PostgreSQL clusters on
//! free loopback ports ([`TestServer`], with `shared_preload_libraries = 'citus'` and
//! `wal_level = logical` and `output_plugin_libraries` naming `citus`, the settings Citus'
//! shard moves need) and leaves a watcher behind
//! that stops them and deletes their files when the test process ends. Citus keeps its node
//! list per database, so each test database is created on every node, gets the extension on
//! every node, and is joined on the coordinator (`citus_set_coordinator_host`,
//! `citus_add_node`).
//!
//! With `CITUS_URL` (a coordinator's database, which must hold the extension and its workers)
//! the workers are read from its `pg_dist_node` and reached by the names recorded there, as
//! the same user: they must answer from where the tests run.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use tenancy_core::sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokio::sync::OnceCell;

use crate::TestServer;
use crate::database::{connect, with_database};

/// The nodes of the cluster the tests use, as URLs of an administrative database on each.
#[derive(Debug)]
pub(crate) struct CitusNodes {
    /// The coordinator's administrative database.
    pub(crate) coordinator: String,
    /// Each worker's host, port and administrative database.
    pub(crate) workers: Vec<Worker>,
}

#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) admin_url: String,
}

static NODES: OnceCell<CitusNodes> = OnceCell::const_new();

/// The cluster of this test process, started (or read from `CITUS_URL`) on first use.
pub(crate) async fn nodes() -> Result<&'static CitusNodes> {
    NODES
        .get_or_try_init(|| async {
            match std::env::var("CITUS_URL") {
                Ok(url) => nodes_of(&url).await,
                Err(_) => tokio::task::spawn_blocking(start_cluster).await?,
            }
        })
        .await
}

/// Three servers of this process, removed by a watcher when the process ends.
fn start_cluster() -> Result<CitusNodes> {
    // Citus moves shards by logical replication with its own output plugin, which PostgreSQL
    // 15.20 only lets a replication connection use when output_plugin_libraries names it.
    // The logical replication launcher starts a new subscription's worker at once only if it
    // started none within wal_retrieve_retry_interval (5 s by default): every other move
    // waited about five seconds for it. Tenants are tracked (`citus_stat_tenants`), as the
    // usage figures read them.
    let settings = "-c shared_preload_libraries=citus -c wal_level=logical \
                    -c max_worker_processes=16 -c citus.log_remote_commands=off \
                    -c output_plugin_libraries=pgoutput,test_decoding,citus \
                    -c wal_retrieve_retry_interval=200ms -c citus.stat_tenants_track=all";
    let start = || {
        TestServer::start_with(settings).context(
            "the Citus suites start a cluster of their own and need the Citus extension in \
             `pg_config --pkglibdir`: run `cargo xtask setup`, or set CITUS_URL to a \
             coordinator of your own",
        )
    };
    let servers = [start()?, start()?, start()?];
    let removals: Vec<String> = servers.iter().map(TestServer::removal_command).collect();
    // The watcher holds no pipe of ours, so nothing waits for it; it outlives this process.
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; {}",
            std::process::id(),
            removals.join("; ")
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the watcher that stops the Citus cluster")?;
    let [coordinator, workers @ ..] = servers;
    eprintln!(
        "Citus cluster: coordinator on port {}, workers on {}",
        coordinator.port(),
        workers
            .iter()
            .map(|w| w.port().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    );
    let nodes = CitusNodes {
        coordinator: coordinator.url("postgres"),
        workers: workers
            .iter()
            .map(|w| Worker {
                host: "127.0.0.1".into(),
                port: w.port(),
                admin_url: w.url("postgres"),
            })
            .collect(),
    };
    // The watcher removes them; dropping the handles leaves them running until then.
    std::mem::forget(coordinator);
    std::mem::forget(workers);
    Ok(nodes)
}

/// The workers of a user's coordinator.
async fn nodes_of(url: &str) -> Result<CitusNodes> {
    let admin = connect(url).await?;
    let rows = admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT nodename, nodeport FROM pg_dist_node \
             WHERE groupid <> 0 AND noderole = 'primary' AND isactive ORDER BY nodeid",
        ))
        .await
        .context("CITUS_URL must name a database of a Citus coordinator (pg_dist_node)")?;
    admin.close().await.ok();
    let mut workers = Vec::new();
    for row in rows {
        let host: String = row.try_get("", "nodename")?;
        let port: i32 = row.try_get("", "nodeport")?;
        let mut u = url::Url::parse(url)?;
        u.set_host(Some(&host))?;
        u.set_port(u16::try_from(port).ok())
            .map_err(|()| anyhow::anyhow!("CITUS_URL cannot take a port"))?;
        workers.push(Worker {
            host,
            port: u16::try_from(port)?,
            admin_url: u.to_string(),
        });
    }
    if workers.len() < 2 {
        bail!(
            "the coordinator at CITUS_URL has {} workers; the suites need two",
            workers.len()
        );
    }
    Ok(CitusNodes {
        coordinator: url.to_owned(),
        workers,
    })
}

/// One database joined at a time: joining a node copies the cluster's roles to it, and two
/// joins at once update the same role rows there ("tuple concurrently updated").
static JOINING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Creates `name` on every node, with the extension, and joins it on the coordinator.
pub(crate) async fn create_database(nodes: &CitusNodes, name: &str) -> Result<()> {
    let _one_at_a_time = JOINING.lock().await;
    for worker in &nodes.workers {
        create_with_extension(&worker.admin_url, name).await?;
    }
    create_with_extension(&nodes.coordinator, name).await?;
    let admin = connect(&nodes.coordinator).await?;
    // Few shards: a test's tables hold a few rows, and each shard is a table on a worker.
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{name}\" SET citus.shard_count = 8"
        ))
        .await?;
    admin.close().await.ok();
    let coordinator = url::Url::parse(&nodes.coordinator)?;
    let db = connect(&with_database(&nodes.coordinator, name)?).await?;
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT citus_set_coordinator_host($1, $2)",
        [
            coordinator.host_str().unwrap_or("127.0.0.1").into(),
            i32::from(coordinator.port().unwrap_or(5432)).into(),
        ],
    ))
    .await
    .context("joining the coordinator")?;
    for worker in &nodes.workers {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT citus_add_node($1, $2)",
            [worker.host.clone().into(), i32::from(worker.port).into()],
        ))
        .await
        .with_context(|| format!("adding worker {}:{}", worker.host, worker.port))?;
    }
    db.close().await.ok();
    Ok(())
}

async fn create_with_extension(admin_url: &str, name: &str) -> Result<()> {
    let admin = connect(admin_url).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .with_context(|| format!("creating test database {name}"))?;
    admin.close().await.ok();
    let db = connect(&with_database(admin_url, name)?).await?;
    db.execute_unprepared("CREATE EXTENSION citus")
        .await
        .context("CREATE EXTENSION citus")?;
    db.close().await.ok();
    Ok(())
}

/// Drops `name` on every worker (the coordinator's copy is dropped by the caller).
pub(crate) async fn drop_on_workers(workers: &[String], name: &str) -> Result<()> {
    for url in workers {
        let admin = connect(url).await?;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .with_context(|| format!("dropping {name} on a worker"))?;
        admin.close().await.ok();
    }
    Ok(())
}
