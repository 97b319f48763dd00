//! Test databases: a fresh database per test on a real PostgreSQL (`DATABASE_URL`, or an
//! embedded server from local binaries when it is unset and the user is not root), dropped
//! after a passing test and kept, with its name printed, after a failing one.

use anyhow::{Context, Result, bail};
use tenancy_core::embedded::{EmbeddedOptions, EmbeddedPostgres};
use tenancy_core::sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tokio::sync::OnceCell;

/// The embedded server of this test process, started on first use and reused by every test.
/// It keeps its data under `target/tenancy-test-pg` and keeps running after the tests, so the
/// next run starts at once; `pg_ctl -D target/tenancy-test-pg/data stop` stops it.
static EMBEDDED: OnceCell<String> = OnceCell::const_new();

/// The URL of a database the tests may use to create and drop their own databases: the
/// `DATABASE_URL` environment variable, or an embedded server's `postgres` database.
pub async fn admin_url() -> Result<String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok(url);
    }
    EMBEDDED
        .get_or_try_init(|| async {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/tenancy-test-pg");
            let server = EmbeddedPostgres::start(EmbeddedOptions { root: Some(root), port: 0 })
                .await
                .context("DATABASE_URL is not set and no embedded PostgreSQL could be started; set DATABASE_URL=postgres://USER@HOST:PORT/postgres")?;
            let url = server.url("postgres");
            // Leave it running for the rest of the process and the next run (see above).
            std::mem::forget(server);
            anyhow::Ok(url)
        })
        .await
        .cloned()
}

/// Where a test's database is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DatabaseOn {
    /// The test server ([`admin_url`]).
    #[default]
    Plain,
    /// The Citus cluster of the test process (or `CITUS_URL`): the database exists on the
    /// coordinator and on every worker, with the extension, and the workers are joined.
    Citus,
}

/// In a child process of a test: the administrative URL of the server that holds its parent's
/// database (the Citus coordinator, when the parent's database is there).
pub(crate) const PARENT_ADMIN_URL: &str = "TENANCY_TEST_PARENT_ADMIN_URL";

/// A database created for one test. Call [`TestDatabase::drop_database`] when the test
/// passed; a failing test leaves it in place for inspection.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    /// On a Citus cluster: the workers' administrative URLs, where the database is dropped too.
    workers: Vec<String>,
}

pub(crate) fn with_database(url: &str, database: &str) -> Result<String> {
    let mut u =
        url::Url::parse(url).with_context(|| format!("DATABASE_URL is not a URL: {url:?}"))?;
    u.set_path(database);
    Ok(tenancy_core::plumbing::loopback_without_tls(u.as_str()))
}

impl TestDatabase {
    /// Creates a database with a unique name on the test server.
    pub async fn create() -> Result<Self> {
        Self::create_on(DatabaseOn::Plain).await
    }

    /// Creates a database with a unique name on the test server or the Citus cluster.
    pub async fn create_on(on: DatabaseOn) -> Result<Self> {
        if on == DatabaseOn::Citus {
            let nodes = crate::citus::nodes().await?;
            let name = fresh_name();
            crate::citus::create_database(nodes, &name).await?;
            return Ok(TestDatabase {
                url: with_database(&nodes.coordinator, &name)?,
                name,
                admin_url: nodes.coordinator.clone(),
                workers: nodes.workers.iter().map(|w| w.admin_url.clone()).collect(),
            });
        }
        Self::create_at(&admin_url().await?).await
    }

    /// Creates a database with a unique name on the server `admin_url` reaches (a test's own
    /// server, such as the primary of [`crate::Replicated`]).
    pub async fn create_at(admin_url: &str) -> Result<Self> {
        let admin_url = admin_url.to_owned();
        let name = fresh_name();
        let admin = connect(&admin_url).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating test database {name}"))?;
        admin.close().await.ok();
        let url = with_database(&admin_url, &name)?;
        Ok(TestDatabase {
            name,
            url,
            admin_url,
            workers: Vec::new(),
        })
    }

    /// A database another process of this test created (the parent of a child started by
    /// the conformance suite's interrupted checks). Never drop it from here.
    pub async fn existing(name: &str) -> Result<Self> {
        let admin_url = match std::env::var(PARENT_ADMIN_URL) {
            Ok(url) => url,
            Err(_) => admin_url().await?,
        };
        let url = with_database(&admin_url, name)?;
        Ok(TestDatabase {
            name: name.to_owned(),
            url,
            admin_url,
            workers: Vec::new(),
        })
    }

    /// The database's name; also the prefix of any database a test creates on the server
    /// (separate-db tenants), so they are dropped with it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL for this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A URL for the server's administrative database.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// This database and the databases a test made beside it (separate-db's tenant databases
    /// and template, named with this database's name as their prefix): `(name, url)` each,
    /// this one first.
    pub async fn with_tenant_databases(&self) -> Result<Vec<(String, String)>> {
        let admin = self.admin().await?;
        let rows = admin
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT datname FROM pg_database WHERE starts_with(datname, $1 || '_') \
                 ORDER BY datname",
                [self.name.clone().into()],
            ))
            .await?;
        admin.close().await.ok();
        let mut all = vec![(self.name.clone(), self.url.clone())];
        for row in rows {
            let name: String = row.try_get("", "datname")?;
            let url = with_database(&self.admin_url, &name)?;
            all.push((name, url));
        }
        Ok(all)
    }

    /// A fresh connection pool to this database as the test's (superuser) role, for checking
    /// what a store left behind.
    pub async fn admin(&self) -> Result<DatabaseConnection> {
        connect(&self.url).await
    }

    /// Drops this database and every database whose name starts with its name.
    pub async fn drop_database(self) -> Result<()> {
        let admin = connect(&self.admin_url).await?;
        let rows = admin
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT datname FROM pg_database WHERE datname = $1 OR starts_with(datname, $1 || '_') ORDER BY length(datname) DESC",
                [self.name.clone().into()],
            ))
            .await?;
        for row in rows {
            let db: String = row.try_get("", "datname")?;
            if !db.starts_with("tenancy_test_") {
                bail!("refusing to drop {db}");
            }
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                .await
                .with_context(|| format!("dropping {db}"))?;
        }
        admin.close().await.ok();
        crate::citus::drop_on_workers(&self.workers, &self.name).await
    }
}

/// Fails when `schema` exists in `db`: a store that refused a database left nothing there.
pub async fn assert_no_schema(db: &TestDatabase, schema: &str) -> Result<()> {
    let admin = db.admin().await?;
    let found = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT to_regnamespace($1) IS NOT NULL AS found",
            [schema.into()],
        ))
        .await?
        .map(|r| r.try_get::<bool>("", "found"))
        .transpose()?
        .unwrap_or(false);
    admin.close().await.ok();
    if found {
        bail!("schema {schema} was created in {}", db.name());
    }
    Ok(())
}

/// A new database name. Short (21 characters), so that a separate-db tenant database named
/// after it plus a 40-character slug stays within PostgreSQL's 63-byte identifier limit. The
/// last 8 hex digits of a UUID v7 are random.
fn fresh_name() -> String {
    format!(
        "tenancy_test_{}",
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    )
}

pub(crate) async fn connect(url: &str) -> Result<DatabaseConnection> {
    let mut opts = tenancy_core::sea_orm::ConnectOptions::new(
        tenancy_core::plumbing::loopback_without_tls(url),
    );
    opts.max_connections(2)
        .min_connections(0)
        .sqlx_logging(false);
    Database::connect(opts).await.with_context(|| {
        format!(
            "cannot reach PostgreSQL at {}; start it, or set DATABASE_URL to one that answers",
            redact(url)
        )
    })
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<invalid url>".into(),
    }
}
