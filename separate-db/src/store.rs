use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tenancy_core::domain::{Page, PageRequest};
use tenancy_core::migration::{TenantMigrations, control, pin_tenant_tables};
use tenancy_core::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
    TransactionTrait,
};
use tenancy_core::sea_orm_migration::MigratorTrait;
use tenancy_core::{
    Error, MigrateOptions, MigrationOutcome, MigrationReport, NewTenant, Placement, Result,
    ScopeMode, Slug, Strategy, TableNamespace, Tenant, TenantId, TenantMigration, TenantScope,
    TenantState, TenantStore, UnscopedView, catalog, loopback_without_tls, quote_ident,
};

use crate::router::{Lease, Router, RouterSettings, Server};

/// Serialises installs of the catalog (an arbitrary constant key).
const INSTALL_LOCK: i64 = 0x7465_6e61_6e63_7903;
/// The first key of the advisory locks on a server's template database; the second is a hash
/// of the template's catalog name. Creations take it shared, template migrations exclusive.
const TEMPLATE_LOCK: i32 = 0x7464_6203;

/// A PostgreSQL server to place tenants on, besides the control server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The name recorded in each tenant's placement. Lowercase letters, digits, `-` and `_`.
    pub name: String,
    /// A URL of the server, with a database that exists (`postgres`, say): the store runs
    /// `CREATE DATABASE` and `DROP DATABASE` from there.
    pub url: String,
}

// ANCHOR: options
/// How a [`SeparateDbStore`] connects and behaves.
#[derive(Debug, Clone)]
pub struct SeparateDbOptions {
    /// The name of the server that holds the control database (the store's URL).
    pub control_server: String,
    /// More servers to place tenants on.
    pub servers: Vec<ServerConfig>,
    /// The most connections the store holds to each server, control pool included. The
    /// server's own `max_connections` must leave room for it.
    pub connections_per_server: u32,
    /// The most connections of one tenant database's pool. Every open pool takes this many
    /// from its server's budget, so `connections_per_server / connections_per_database` pools
    /// can be open on a server at once.
    pub connections_per_database: u32,
    /// Connections of the control database's pool (catalog queries), taken from the control
    /// server's budget.
    pub control_connections: u32,
    /// How long a request waits for room in a server's budget before [`Error::PoolTimeout`].
    pub budget_timeout: Duration,
    /// How long a request waits for a connection of its tenant's pool.
    pub acquire_timeout: Duration,
    /// Pooled connections are closed after this long (bounds the server's per-connection
    /// caches); `None` keeps them.
    pub max_connection_lifetime: Option<Duration>,
    /// Tenant databases are named this prefix followed by the slug; the template database of
    /// each server is the prefix followed by `_template`. `None`: the control database's name
    /// followed by `_`.
    pub database_prefix: Option<String>,
    /// The `application_name` of every connection, which tells the store's connections apart
    /// in `pg_stat_activity`.
    pub application_name: String,
    /// After a server failed to answer, requests for its tenants fail at once with
    /// [`Error::Unavailable`] for this long, then the next one tries again.
    pub retry_after: Duration,
    /// The tenant migrations.
    pub migrations: TenantMigrations,
}

impl Default for SeparateDbOptions {
    fn default() -> Self {
        SeparateDbOptions {
            control_server: "main".into(),
            servers: Vec::new(),
            connections_per_server: 20,
            connections_per_database: 2,
            control_connections: 2,
            budget_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            max_connection_lifetime: Some(Duration::from_secs(300)),
            database_prefix: None,
            application_name: "tenancy-separate-db".into(),
            retry_after: Duration::from_secs(1),
            migrations: TenantMigrations::default(),
        }
    }
}
// ANCHOR_END: options

/// The separate-db strategy. See the crate documentation.
#[derive(Debug, Clone)]
pub struct SeparateDbStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The catalog.
    control: DatabaseConnection,
    router: Arc<Router>,
    options: SeparateDbOptions,
    prefix: String,
}

fn stmt(sql: &str, values: impl IntoIterator<Item = tenancy_core::sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The one-row table in every tenant database (and template) that records its version: the
/// authority a migration run reads, since the catalog lives in another database and cannot
/// commit together with it.
const VERSION_TABLE: &str = "tenancy_schema_version";

impl SeparateDbStore {
    /// Connects to the control database at `control_url`, installs the catalog, and prepares
    /// the router for the control server and `options.servers`. Template databases are
    /// created on each server when its first tenant arrives.
    pub async fn connect(control_url: &str, options: SeparateDbOptions) -> Result<Self> {
        let control_url = &loopback_without_tls(control_url);
        let url =
            url::Url::parse(control_url).map_err(|e| invalid("control_url", e.to_string()))?;
        let control_db = url.path().trim_start_matches('/').to_owned();
        // ANCHOR: prefix
        let prefix = match &options.database_prefix {
            Some(p) => p.clone(),
            None => format!("{control_db}_"),
        };
        if !valid_name(&prefix) || prefix.len() + Slug::MAX_LEN > 63 {
            return Err(invalid(
                "database_prefix",
                format!(
                    "{prefix:?} must be lowercase letters, digits, '_' and '-', and at most {} \
                     characters, so that prefix + slug fits PostgreSQL's 63-byte names",
                    63 - Slug::MAX_LEN
                ),
            ));
        }
        // ANCHOR_END: prefix
        if options.connections_per_database == 0 || options.control_connections == 0 {
            return Err(invalid(
                "connections_per_database",
                "pools need at least one connection",
            ));
        }
        if options.connections_per_server
            < options.control_connections + options.connections_per_database
        {
            return Err(invalid(
                "connections_per_server",
                "must leave room for the control pool and one tenant pool",
            ));
        }
        let mut servers = vec![Arc::new(Server::new(
            options.control_server.clone(),
            url.clone(),
            options.connections_per_server,
            options.control_connections,
        ))];
        for s in &options.servers {
            if !valid_name(&s.name) || servers.iter().any(|known| known.name == s.name) {
                return Err(invalid(
                    "servers",
                    format!("server name {:?} is invalid or used twice", s.name),
                ));
            }
            let u = url::Url::parse(&loopback_without_tls(&s.url))
                .map_err(|e| invalid("servers", e.to_string()))?;
            servers.push(Arc::new(Server::new(
                s.name.clone(),
                u,
                options.connections_per_server,
                0,
            )));
        }
        let mut connect = ConnectOptions::new(control_url);
        let app = options.application_name.clone();
        connect
            .max_connections(options.control_connections)
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout)
            .sqlx_logging(false)
            .map_sqlx_postgres_opts(move |o| o.application_name(&app));
        if let Some(lifetime) = options.max_connection_lifetime {
            connect.max_lifetime(lifetime);
        }
        let control = Database::connect(connect).await?;
        let router = Arc::new(Router::new(
            servers,
            RouterSettings {
                per_database: options.connections_per_database,
                budget_timeout: options.budget_timeout,
                acquire_timeout: options.acquire_timeout,
                max_lifetime: options.max_connection_lifetime,
                idle_timeout: Some(Duration::from_secs(60)),
                application_name: options.application_name.clone(),
                retry_after: options.retry_after,
            },
        ));
        let txn = control.begin().await?;
        txn.execute_raw(stmt(
            "SELECT pg_advisory_xact_lock($1)",
            [INSTALL_LOCK.into()],
        ))
        .await?;
        control::Migrator::up(&txn, None).await?;
        txn.commit().await?;
        Ok(SeparateDbStore {
            inner: Arc::new(Inner {
                control,
                router,
                options,
                prefix,
            }),
        })
    }

    /// The control database's pool (the catalog). For operations and tests.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.control
    }

    // ANCHOR: database_names
    /// The database of the tenant with this slug.
    pub fn database_for(&self, slug: &Slug) -> String {
        format!("{}{slug}", self.inner.prefix)
    }

    /// The template database on every server.
    pub fn template_database(&self) -> String {
        format!("{}_template", self.inner.prefix)
    }
    // ANCHOR_END: database_names

    /// The configured server names, the control server first.
    pub fn servers(&self) -> Vec<String> {
        self.inner
            .router
            .servers
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    /// Per server: its name, the tenant pools open on it, and the connections they (and the
    /// control pool) may hold, which never exceeds `connections_per_server`.
    pub fn open_pools(&self) -> Vec<(String, usize, u32)> {
        self.inner.router.open_pools()
    }

    fn template_key(&self, server: usize) -> String {
        format!(
            "database:{}:{}",
            self.inner.router.servers[server].name,
            self.template_database()
        )
    }

    // ANCHOR: server_of
    fn server_of(&self, tenant: &Tenant) -> Result<(usize, String)> {
        let expected = self.database_for(&tenant.slug);
        match &tenant.placement {
            Placement::Database { server, database } if *database == expected => self
                .inner
                .router
                .server_index(server)
                .map(|i| (i, expected))
                .ok_or_else(|| {
                    Error::Unavailable(format!(
                        "tenant {} is placed on server {server:?}, which this store is not configured with",
                        tenant.slug
                    ))
                }),
            _ => Err(Error::Conflict(format!(
                "tenant {} is not placed in a database of this store",
                tenant.slug
            ))),
        }
    }
    // ANCHOR_END: server_of

    // ANCHOR: maintenance
    /// Runs a statement that cannot run in a transaction (`CREATE DATABASE`) on `server`'s
    /// maintenance database, through the router (so within the budget).
    async fn maintenance(&self, server: usize, sql: &str) -> Result<()> {
        let srv = self.inner.router.servers[server].clone();
        let lease = self
            .inner
            .router
            .lease(server, &srv.maintenance_database())
            .await?;
        match lease.connection().execute_unprepared(sql).await {
            Ok(_) => Ok(()),
            Err(e) => Err(srv.explain(e.into(), self.inner.options.retry_after).await),
        }
    }
    // ANCHOR_END: maintenance

    /// Drops `database` on `server` if it exists (whatever an interrupted attempt left) and
    /// creates it again as a copy of `template`.
    async fn recreate_database(&self, server: usize, database: &str, template: &str) -> Result<()> {
        let quoted = quote_ident(database);
        self.inner.router.evict(server, database).await;
        self.maintenance(
            server,
            &format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"),
        )
        .await?;
        self.maintenance(
            server,
            &format!(
                "CREATE DATABASE {quoted} TEMPLATE {}",
                quote_ident(template)
            ),
        )
        .await
    }

    async fn lease(&self, server: usize, database: &str) -> Result<Lease> {
        self.inner.router.lease(server, database).await
    }

    /// Runs `f` in a transaction on `database`, turning a timeout on a server that is down into
    /// [`Error::Unavailable`].
    async fn begin(&self, lease: &Lease) -> Result<tenancy_core::sea_orm::DatabaseTransaction> {
        match lease.connection().begin().await {
            Ok(txn) => Ok(txn),
            Err(e) => Err(lease
                .server()
                .explain(e.into(), self.inner.options.retry_after)
                .await),
        }
    }

    // ANCHOR: ensure_template
    /// The version of `server`'s template database, creating and migrating it first if the
    /// server has none yet.
    async fn ensure_template(&self, server: usize) -> Result<i32> {
        let key = self.template_key(server);
        let version = catalog::template_version(&self.inner.control, &key).await?;
        if version > 0 {
            return Ok(version);
        }
        let txn = self.inner.control.begin().await?;
        txn.execute_raw(stmt(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            [TEMPLATE_LOCK.into(), key.as_str().into()],
        ))
        .await?;
        let version = catalog::template_version(&txn, &key).await?;
        if version > 0 {
            txn.commit().await?;
            return Ok(version);
        }
        // Whatever an interrupted attempt left is rebuilt from scratch.
        let template = self.template_database();
        self.recreate_database(server, &template, "template0")
            .await?;
        let version = self.migrate_database(server, &template, None).await?;
        catalog::set_template_version(&txn, &key, version.1).await?;
        txn.commit().await?;
        tracing::info!(server = %self.inner.router.servers[server].name, version = version.1, "template database ready");
        Ok(version.1)
    }
    // ANCHOR_END: ensure_template

    // ANCHOR: migrate_database
    /// Brings `database` on `server` to the latest version in one transaction of its own,
    /// recording the version inside it; pins the tables to `tenant` when given. Returns
    /// (from, to). The pool is closed afterwards when the database is a template, which must
    /// have no connections to be copied.
    async fn migrate_database(
        &self,
        server: usize,
        database: &str,
        tenant: Option<TenantId>,
    ) -> Result<(i32, i32)> {
        let lease = self.lease(server, database).await?;
        let result = self.migrate_leased(&lease, tenant).await;
        if tenant.is_none() {
            // A template must have no connections to be copied, whatever happened here.
            drop(lease);
            self.inner.router.evict(server, database).await;
        }
        result
    }

    async fn migrate_leased(&self, lease: &Lease, tenant: Option<TenantId>) -> Result<(i32, i32)> {
        let txn = self.begin(lease).await?;
        if tenant.is_none() {
            // Tenant databases inherit the table from their template.
            txn.execute_unprepared(&format!(
                "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (\
                   one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL); \
                 INSERT INTO {VERSION_TABLE} (version) VALUES (0) ON CONFLICT DO NOTHING"
            ))
            .await?;
        }
        let from = txn
            .query_one_raw(stmt(
                &format!("SELECT version FROM {VERSION_TABLE} FOR UPDATE"),
                [],
            ))
            .await?
            .map(|r| r.try_get::<i32>("", "version"))
            .transpose()?
            .unwrap_or(0);
        let latest = self.inner.options.migrations.latest();
        if from >= latest {
            txn.commit().await?;
            return Ok((from, from));
        }
        let to = self
            .inner
            .options
            .migrations
            .apply(&txn, None, from)
            .await?;
        if let Some(id) = tenant {
            txn.execute_unprepared(&pin_tenant_tables("public", id))
                .await?;
        }
        txn.execute_raw(stmt(
            &format!("UPDATE {VERSION_TABLE} SET version = $1"),
            [to.into()],
        ))
        .await?;
        txn.commit().await?;
        Ok((from, to))
    }
    // ANCHOR_END: migrate_database

    // ANCHOR: place
    /// The configured server with the fewest tenants (skipping servers known to be down),
    /// or the one named.
    async fn place(&self, requested: Option<&str>) -> Result<usize> {
        let router = &self.inner.router;
        if let Some(name) = requested {
            return router.server_index(name).ok_or_else(|| {
                invalid(
                    "server",
                    format!(
                        "no server named {name:?}; configured: {}",
                        self.servers().join(", ")
                    ),
                )
            });
        }
        let rows = self
            .inner
            .control
            .query_all_raw(stmt(
                "SELECT placement->>'server' AS server, count(*) AS n FROM tenancy.tenants \
                 WHERE placement->>'kind' = 'database' GROUP BY 1",
                [],
            ))
            .await?;
        let mut counts = vec![0i64; router.servers.len()];
        for row in rows {
            let name: Option<String> = row.try_get("", "server")?;
            if let Some(i) = name.and_then(|n| router.server_index(&n)) {
                counts[i] = row.try_get("", "n")?;
            }
        }
        let candidates: Vec<usize> = (0..counts.len())
            .filter(|&i| router.servers[i].is_up())
            .collect();
        let pool = if candidates.is_empty() {
            (0..counts.len()).collect()
        } else {
            candidates
        };
        Ok(pool
            .into_iter()
            .min_by_key(|&i| (counts[i], i))
            .unwrap_or(0))
    }
    // ANCHOR_END: place

    // ANCHOR: provision
    /// Clones the template into the tenant's database, pins its tables to the tenant and marks
    /// it ready. The catalog row stays locked throughout, so two calls cannot race; a crash
    /// leaves the tenant `provisioning`, and the next call drops whatever was half made and
    /// starts again.
    async fn provision(&self, tenant: &Tenant) -> Result<Tenant> {
        let (server, database) = self.server_of(tenant)?;
        self.ensure_template(server).await?;
        let key = self.template_key(server);
        let txn = self.inner.control.begin().await?;
        let Some(current) = catalog::lock(&txn, tenant.id).await? else {
            return Err(Error::TenantNotFound);
        };
        if current.state != TenantState::Provisioning {
            txn.commit().await?;
            return Ok(current);
        }
        // Shared: creations copy the template side by side; a template migration waits.
        txn.execute_raw(stmt(
            "SELECT pg_advisory_xact_lock_shared($1, hashtext($2))",
            [TEMPLATE_LOCK.into(), key.as_str().into()],
        ))
        .await?;
        let version = catalog::template_version(&txn, &key).await?;
        self.recreate_database(server, &database, &self.template_database())
            .await?;
        {
            let lease = self.lease(server, &database).await?;
            lease
                .connection()
                .execute_unprepared(&pin_tenant_tables("public", tenant.id))
                .await?;
        }
        catalog::set_ready(&txn, tenant.id, version).await?;
        txn.commit().await?;
        self.tenant(tenant.id).await
    }
    // ANCHOR_END: provision

    // ANCHOR: migrate_template
    async fn migrate_template(&self, server: usize) -> Result<Option<TenantMigration>> {
        let key = self.template_key(server);
        let txn = self.inner.control.begin().await?;
        txn.execute_raw(stmt(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            [TEMPLATE_LOCK.into(), key.as_str().into()],
        ))
        .await?;
        let recorded = catalog::template_version(&txn, &key).await?;
        if recorded == 0 {
            // No tenant was ever placed here; the template is made, current, on first use.
            txn.commit().await?;
            return Ok(None);
        }
        let latest = self.inner.options.migrations.latest();
        if recorded >= latest {
            // The fast path: the catalog's record, no connection to the template. (The
            // record is written after the template's own commit, so it can lag, never lead.)
            txn.commit().await?;
            return Ok(Some(TenantMigration {
                tenant_id: None,
                name: format!(
                    "{}/{}",
                    self.inner.router.servers[server].name,
                    self.template_database()
                ),
                outcome: MigrationOutcome::UpToDate { version: recorded },
            }));
        }
        let (from, to) = self
            .migrate_database(server, &self.template_database(), None)
            .await?;
        catalog::set_template_version(&txn, &key, to).await?;
        txn.commit().await?;
        Ok(Some(TenantMigration {
            tenant_id: None,
            name: format!(
                "{}/{}",
                self.inner.router.servers[server].name,
                self.template_database()
            ),
            outcome: if from == to {
                MigrationOutcome::UpToDate { version: to }
            } else {
                MigrationOutcome::Migrated { from, to }
            },
        }))
    }
    // ANCHOR_END: migrate_template

    // ANCHOR: migrate_tenant
    async fn migrate_tenant(&self, tenant: Tenant) -> TenantMigration {
        let result: Result<MigrationOutcome> = async {
            let (server, database) = self.server_of(&tenant)?;
            let (from, to) = self
                .migrate_database(server, &database, Some(tenant.id))
                .await?;
            // The tenant's database holds the truth; the catalog copy serves the fast path
            // and is brought in line even when the database was already current (a run
            // interrupted between the two commits).
            catalog::set_schema_version(&self.inner.control, tenant.id, to).await?;
            Ok(if from == to {
                MigrationOutcome::UpToDate { version: to }
            } else {
                MigrationOutcome::Migrated { from, to }
            })
        }
        .await;
        TenantMigration::of_tenant(&tenant, result)
    }
    // ANCHOR_END: migrate_tenant
}

#[async_trait]
impl TenantStore for SeparateDbStore {
    fn strategy(&self) -> Strategy {
        Strategy::SeparateDb
    }

    // ANCHOR: create_tenant
    async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        // An existing tenant keeps the server it was placed on; only a new one is placed.
        let tenant = match catalog::by_slug(&self.inner.control, &new.slug).await? {
            Some(existing) => existing,
            None => {
                let server = self.place(new.server.as_deref()).await?;
                let placement = Placement::Database {
                    server: self.inner.router.servers[server].name.clone(),
                    database: self.database_for(&new.slug),
                };
                catalog::insert_provisioning(&self.inner.control, &new.slug, &new.name, &placement)
                    .await?
                    .0
            }
        };
        match tenant.state {
            TenantState::Ready => Ok(tenant),
            TenantState::Deleting => Err(Error::TenantNotReady {
                slug: tenant.slug.to_string(),
                state: tenant.state,
            }),
            TenantState::Provisioning => self.provision(&tenant).await,
        }
    }
    // ANCHOR_END: create_tenant

    async fn tenant(&self, id: TenantId) -> Result<Tenant> {
        catalog::by_id(&self.inner.control, id)
            .await?
            .ok_or(Error::TenantNotFound)
    }

    async fn tenant_by_slug(&self, slug: &Slug) -> Result<Tenant> {
        catalog::by_slug(&self.inner.control, slug)
            .await?
            .ok_or(Error::TenantNotFound)
    }

    async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>> {
        catalog::list(&self.inner.control, page).await
    }

    // ANCHOR: delete_tenant
    async fn delete_tenant(&self, id: TenantId) -> Result<()> {
        let tenant = self.tenant(id).await?;
        let (server, database) = self.server_of(&tenant)?;
        catalog::set_state(&self.inner.control, id, TenantState::Deleting).await?;
        self.inner.router.evict(server, &database).await;
        self.maintenance(
            server,
            &format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&database)
            ),
        )
        .await?;
        catalog::remove(&self.inner.control, id).await
    }
    // ANCHOR_END: delete_tenant

    // ANCHOR: migrate_all
    async fn migrate_all(&self, options: MigrateOptions) -> Result<MigrationReport> {
        let latest = self.inner.options.migrations.latest();
        let mut report = MigrationReport {
            target_version: latest,
            tenants: Vec::new(),
            up_to_date: 0,
        };
        for server in 0..self.inner.router.servers.len() {
            match self.migrate_template(server).await {
                Ok(Some(line)) => report.tenants.push(line),
                Ok(None) => {}
                Err(e) => report.tenants.push(TenantMigration {
                    tenant_id: None,
                    name: format!(
                        "{}/{}",
                        self.inner.router.servers[server].name,
                        self.template_database()
                    ),
                    outcome: MigrationOutcome::Failed {
                        version: 0,
                        error: e.chain(),
                    },
                }),
            }
        }
        // The fast path: one indexed query finds that nobody is behind.
        let behind = catalog::behind(&self.inner.control, latest).await?;
        report.up_to_date = catalog::count_ready(&self.inner.control)
            .await?
            .saturating_sub(behind.len());
        // More at once than the budget has pools would only queue in the router.
        let o = &self.inner.options;
        let pools = (o.connections_per_server - o.control_connections) / o.connections_per_database;
        // Per server, not times the servers: the pending tenants may all sit on one.
        let concurrency = options
            .concurrency
            .clamp(1, usize::try_from(pools.max(1)).unwrap_or(1));
        let lines: Vec<TenantMigration> = futures::stream::iter(behind)
            .map(|t| self.migrate_tenant(t))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        report.tenants.extend(lines);
        Ok(report)
    }
    // ANCHOR_END: migrate_all

    // ANCHOR: scope
    async fn scope_with(&self, tenant: &Tenant, mode: ScopeMode) -> Result<TenantScope> {
        if tenant.state != TenantState::Ready {
            return Err(Error::TenantNotReady {
                slug: tenant.slug.to_string(),
                state: tenant.state,
            });
        }
        // The database name comes from the validated slug and must match the catalog.
        let (server, database) = self.server_of(tenant)?;
        let lease = self.lease(server, &database).await?;
        // A database of its own: plain table names, and no session state to set or reset.
        Ok(match mode {
            ScopeMode::Autocommit => TenantScope::autocommit(
                tenant.id,
                TableNamespace::Unqualified,
                lease.connection().clone(),
            ),
            ScopeMode::Transaction => TenantScope::in_transaction(
                tenant.id,
                TableNamespace::Unqualified,
                self.begin(&lease).await?,
            ),
        }
        .with_guard(lease))
    }
    // ANCHOR_END: scope

    fn connections(&self) -> tenancy_core::Connections {
        tenancy_core::Connections::of(&self.inner.control) + self.inner.router.connections()
    }

    async fn unscoped_view(&self, table: &str) -> Result<UnscopedView> {
        // Without a tenant there is only the control database, which holds no tenant table.
        UnscopedView::count(self.inner.control.begin().await?, None, table).await
    }
}
