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
    TenantState, TenantStore, UnscopedView, catalog, quote_ident,
};
use tokio::sync::RwLock;

/// Serialises installs and template migrations of one database (an arbitrary constant key).
const TEMPLATE_LOCK: i64 = 0x7465_6e61_6e63_7902;

// ANCHOR: options
/// How a [`SeparateSchemaStore`] connects and behaves.
#[derive(Debug, Clone)]
pub struct SeparateSchemaOptions {
    /// Most connections the store holds (to the database, or to the pooler when
    /// [`SeparateSchemaOptions::tenant_url`] is set).
    pub max_connections: u32,
    /// How long a request waits for a free connection before [`Error::PoolTimeout`].
    pub acquire_timeout: Duration,
    /// A pooled connection is closed after this long, which bounds the per-connection caches
    /// PostgreSQL keeps of every relation the connection has touched (thousands of schemas
    /// means thousands of relations). `None` keeps connections forever.
    pub max_connection_lifetime: Option<Duration>,
    /// Tenant schemas are named this prefix followed by the slug.
    pub schema_prefix: String,
    /// The pre-migrated schema new tenants are copied from.
    pub template_schema: String,
    /// Tenant traffic goes to this URL (a PgBouncer in transaction mode, for instance) while
    /// the catalog, DDL and migrations use the direct URL. Through a pooler every scope is a
    /// transaction and statements are not cached: PgBouncer before 1.21 cannot keep a named
    /// statement across transactions. The pooler must run `DEALLOCATE ALL` when it hands a
    /// connection back (`server_reset_query_always = 1`).
    pub tenant_url: Option<String>,
    /// The tenant migrations.
    pub migrations: TenantMigrations,
}
// ANCHOR_END: options

impl Default for SeparateSchemaOptions {
    fn default() -> Self {
        SeparateSchemaOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            max_connection_lifetime: Some(Duration::from_secs(300)),
            schema_prefix: "tenant_".into(),
            template_schema: "tenant_template".into(),
            tenant_url: None,
            migrations: TenantMigrations::default(),
        }
    }
}

/// The statements that copy the template into a new schema, built once per template version.
#[derive(Debug)]
struct CloneScript {
    version: i32,
    /// Runs with `search_path` set to the new schema.
    body: String,
    /// Tables that carry `tenant_id`, to pin to the tenant.
    tenant_tables: Vec<String>,
}

/// The separate-schema strategy. See the crate documentation.
#[derive(Debug, Clone)]
pub struct SeparateSchemaStore {
    /// Catalog, DDL, migrations: always direct.
    control: DatabaseConnection,
    /// Tenant traffic: the same pool, or one through a pooler.
    tenants: DatabaseConnection,
    options: SeparateSchemaOptions,
    clone_script: Arc<RwLock<Option<Arc<CloneScript>>>>,
}

fn stmt(sql: &str, values: impl IntoIterator<Item = tenancy_core::sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= 63
        && !name.starts_with("pg_")
}

// ANCHOR: pool
async fn pool(
    url: &str,
    options: &SeparateSchemaOptions,
    through_pooler: bool,
) -> Result<DatabaseConnection> {
    let mut connect = ConnectOptions::new(tenancy_core::loopback_without_tls(url));
    connect
        .max_connections(options.max_connections)
        .min_connections(0)
        .acquire_timeout(options.acquire_timeout)
        .sqlx_logging(false);
    if let Some(lifetime) = options.max_connection_lifetime {
        connect.max_lifetime(lifetime);
    }
    if through_pooler {
        connect.map_sqlx_postgres_opts(|o| o.statement_cache_capacity(0));
    }
    Ok(Database::connect(connect).await?)
}
// ANCHOR_END: pool

// ANCHOR: pin
/// Pins every table of the current `search_path` schema that has `tenant_id` to one tenant, so
/// the database itself refuses to change a row's tenant. For freshly copied tables (adding
/// the constraint twice fails); later tables are pinned by [`pin_tenant_tables`].
fn pin_statements(tables: &[String], tenant: TenantId) -> String {
    tables
        .iter()
        .map(|t| {
            format!(
                "ALTER TABLE {t} ADD CONSTRAINT tenancy_pinned_tenant CHECK (tenant_id = '{id}');",
                t = quote_ident(t),
                id = tenant.as_uuid()
            )
        })
        .collect()
}
// ANCHOR_END: pin

impl SeparateSchemaStore {
    /// Connects to `database_url`, installs the catalog and, when missing, the template schema.
    pub async fn connect(database_url: &str, options: SeparateSchemaOptions) -> Result<Self> {
        for (field, name) in [
            ("schema_prefix", &options.schema_prefix),
            ("template_schema", &options.template_schema),
        ] {
            let room = if field == "schema_prefix" {
                Slug::MAX_LEN
            } else {
                0
            };
            if !valid_schema_name(name) || name.len() + room > 63 {
                return Err(Error::Invalid {
                    field,
                    reason: format!(
                        "must be lowercase letters, digits, '_' and '-', not starting with pg_, \
                         and short enough for PostgreSQL's 63-byte names (a prefix at most {} \
                         characters, to leave room for a {}-character slug)",
                        63 - Slug::MAX_LEN,
                        Slug::MAX_LEN
                    ),
                });
            }
        }
        let control = pool(database_url, &options, false).await?;
        let tenants = match &options.tenant_url {
            Some(url) => pool(url, &options, true).await?,
            None => control.clone(),
        };
        let store = SeparateSchemaStore {
            control,
            tenants,
            options,
            clone_script: Arc::new(RwLock::new(None)),
        };
        store.install().await?;
        Ok(store)
    }

    /// The direct pool (catalog, DDL). For operations and tests.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.control
    }

    // ANCHOR: schema_for
    /// The schema of the tenant with this slug.
    pub fn schema_for(&self, slug: &Slug) -> String {
        format!("{}{}", self.options.schema_prefix, slug)
    }
    // ANCHOR_END: schema_for

    fn template_key(&self) -> String {
        format!("schema:{}", self.options.template_schema)
    }

    async fn install(&self) -> Result<()> {
        let txn = self.control.begin().await?;
        txn.execute_raw(stmt(
            "SELECT pg_advisory_xact_lock($1)",
            [TEMPLATE_LOCK.into()],
        ))
        .await?;
        control::Migrator::up(&txn, None).await?;
        if catalog::template_version(&txn, &self.template_key()).await? == 0 {
            let template = quote_ident(&self.options.template_schema);
            txn.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS {template}"))
                .await?;
            let version = self
                .options
                .migrations
                .apply(&txn, Some(&self.options.template_schema), 0)
                .await?;
            catalog::set_template_version(&txn, &self.template_key(), version).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    // ANCHOR: clone_script
    /// Reads the template's tables, keys and indexes and builds the script that copies them,
    /// every constraint and index under the template's own name (so that a later migration
    /// naming one, `DROP INDEX tasks_project_idx`, works on every tenant). Refuses templates
    /// holding what the copy would miss (sequences, views).
    async fn build_clone_script(&self, conn: &impl ConnectionTrait) -> Result<CloneScript> {
        let template = &self.options.template_schema;
        let version = catalog::template_version(conn, &self.template_key()).await?;
        let extras = conn
            .query_one_raw(stmt(
                "SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind NOT IN ('r', 'p', 'i', 'I')",
                [template.as_str().into()],
            ))
            .await?
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        if extras > 0 {
            return Err(Error::Conflict(format!(
                "template schema {template} holds {extras} sequences or views, which a copy would share or miss"
            )));
        }
        let tables = conn
            .query_all_raw(stmt(
                "SELECT c.relname AS t, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                   AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS has_tenant \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.oid",
                [template.as_str().into()],
            ))
            .await?;
        let mut body = String::new();
        let mut tenant_tables = Vec::new();
        for row in &tables {
            let table: String = row.try_get("", "t")?;
            body.push_str(&format!(
                "CREATE TABLE {t} (LIKE {tmpl}.{t} INCLUDING ALL EXCLUDING INDEXES);\n",
                t = quote_ident(&table),
                tmpl = quote_ident(template)
            ));
            if row.try_get::<bool>("", "has_tenant")? {
                tenant_tables.push(table);
            }
        }
        // LIKE copies columns, defaults and checks. Keys, foreign keys and indexes are replayed
        // under their names; their definitions are read with search_path on the template, so
        // names come out unqualified and resolve to the new schema when replayed there.
        let txn = self.control.begin().await?;
        txn.execute_unprepared(&format!(
            "SET LOCAL search_path TO {}",
            quote_ident(template)
        ))
        .await?;
        let constraints = txn
            .query_all_raw(stmt(
                "SELECT c.conrelid::regclass::text AS t, c.conname AS name, pg_get_constraintdef(c.oid) AS def \
                 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
                 WHERE n.nspname = $1 AND c.contype IN ('p', 'u', 'x', 'f') \
                 ORDER BY c.contype = 'f', c.oid",
                [template.as_str().into()],
            ))
            .await?;
        let indexes = txn
            .query_all_raw(stmt(
                // pg_get_indexdef qualifies the table whatever the search_path: unqualify it.
                "SELECT replace(pg_get_indexdef(i.indexrelid), ' ON ' || quote_ident($1) || '.', ' ON ') AS def \
                 FROM pg_index i \
                 JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace \
                 WHERE n.nspname = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint k \
                   WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x')) \
                 ORDER BY i.indexrelid",
                [template.as_str().into()],
            ))
            .await?;
        txn.rollback().await?;
        for row in &indexes {
            let def: String = row.try_get("", "def")?;
            body.push_str(&def);
            body.push_str(";\n");
        }
        for row in &constraints {
            let table: String = row.try_get("", "t")?;
            let name: String = row.try_get("", "name")?;
            let def: String = row.try_get("", "def")?;
            body.push_str(&format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} {def};\n",
                quote_ident(&name)
            ));
        }
        Ok(CloneScript {
            version,
            body,
            tenant_tables,
        })
    }
    // ANCHOR_END: clone_script

    async fn clone_script(&self) -> Result<Arc<CloneScript>> {
        if let Some(script) = self.clone_script.read().await.as_ref() {
            return Ok(script.clone());
        }
        let script = Arc::new(self.build_clone_script(&self.control).await?);
        *self.clone_script.write().await = Some(script.clone());
        Ok(script)
    }

    // ANCHOR: provision
    /// Builds the tenant's schema and marks it ready, in one transaction: either the whole
    /// schema exists and the tenant is ready, or neither.
    async fn provision(&self, tenant: &Tenant) -> Result<Tenant> {
        let schema = self.schema_for(&tenant.slug);
        let script = self.clone_script().await?;
        let txn = self.control.begin().await?;
        let Some(current) = catalog::lock(&txn, tenant.id).await? else {
            return Err(Error::TenantNotFound);
        };
        if current.state != TenantState::Provisioning {
            txn.commit().await?;
            return Ok(current);
        }
        let schema_q = quote_ident(&schema);
        // A schema left by an earlier, interrupted attempt can only be an empty shell (the
        // build is transactional), but clear it rather than trust it.
        txn.execute_unprepared(&format!(
            "DROP SCHEMA IF EXISTS {schema_q} CASCADE; CREATE SCHEMA {schema_q}; \
             SET LOCAL search_path TO {schema_q};\n{}{}",
            script.body,
            pin_statements(&script.tenant_tables, tenant.id),
        ))
        .await?;
        catalog::set_ready(&txn, tenant.id, script.version).await?;
        txn.commit().await?;
        self.tenant(tenant.id).await
    }
    // ANCHOR_END: provision

    async fn migrate_template(&self) -> Result<TenantMigration> {
        let latest = self.options.migrations.latest();
        let txn = self.control.begin().await?;
        txn.execute_raw(stmt(
            "SELECT pg_advisory_xact_lock($1)",
            [TEMPLATE_LOCK.into()],
        ))
        .await?;
        let from = catalog::template_version(&txn, &self.template_key()).await?;
        let outcome = if from >= latest {
            MigrationOutcome::UpToDate { version: from }
        } else {
            self.options
                .migrations
                .apply(&txn, Some(&self.options.template_schema), from)
                .await?;
            catalog::set_template_version(&txn, &self.template_key(), latest).await?;
            MigrationOutcome::Migrated { from, to: latest }
        };
        txn.commit().await?;
        *self.clone_script.write().await = None;
        Ok(TenantMigration {
            tenant_id: None,
            name: self.options.template_schema.clone(),
            outcome,
        })
    }

    // ANCHOR: migrate_tenant
    async fn migrate_tenant(&self, tenant: Tenant) -> TenantMigration {
        let schema = self.schema_for(&tenant.slug);
        let result: Result<MigrationOutcome> = async {
            let txn = self.control.begin().await?;
            let Some(current) = catalog::lock(&txn, tenant.id).await? else {
                return Err(Error::TenantNotFound);
            };
            let latest = self.options.migrations.latest();
            if current.state != TenantState::Ready || current.schema_version >= latest {
                txn.commit().await?;
                return Ok(MigrationOutcome::UpToDate {
                    version: current.schema_version,
                });
            }
            let to = self
                .options
                .migrations
                .apply(&txn, Some(&schema), current.schema_version)
                .await?;
            // Tables added by the migrations are pinned to the tenant like the first ones.
            txn.execute_unprepared(&pin_tenant_tables(&schema, tenant.id))
                .await?;
            catalog::set_schema_version(&txn, tenant.id, to).await?;
            txn.commit().await?;
            Ok(MigrationOutcome::Migrated {
                from: current.schema_version,
                to,
            })
        }
        .await;
        TenantMigration::of_tenant(&tenant, result)
    }
    // ANCHOR_END: migrate_tenant
}

#[async_trait]
impl TenantStore for SeparateSchemaStore {
    fn strategy(&self) -> Strategy {
        Strategy::SeparateSchema
    }

    // ANCHOR: create_tenant
    async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        let placement = Placement::Schema {
            schema: self.schema_for(&new.slug),
        };
        let (tenant, _inserted) =
            catalog::insert_provisioning(&self.control, &new.slug, &new.name, &placement).await?;
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
        catalog::by_id(&self.control, id)
            .await?
            .ok_or(Error::TenantNotFound)
    }

    async fn tenant_by_slug(&self, slug: &Slug) -> Result<Tenant> {
        catalog::by_slug(&self.control, slug)
            .await?
            .ok_or(Error::TenantNotFound)
    }

    async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>> {
        catalog::list(&self.control, page).await
    }

    // ANCHOR: delete_tenant
    async fn delete_tenant(&self, id: TenantId) -> Result<()> {
        let tenant = self.tenant(id).await?;
        catalog::set_state(&self.control, id, TenantState::Deleting).await?;
        let schema = quote_ident(&self.schema_for(&tenant.slug));
        self.control
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await?;
        catalog::remove(&self.control, id).await
    }
    // ANCHOR_END: delete_tenant

    // ANCHOR: migrate_all
    async fn migrate_all(&self, options: MigrateOptions) -> Result<MigrationReport> {
        let latest = self.options.migrations.latest();
        let template = self.migrate_template().await?;
        let mut report = MigrationReport {
            target_version: latest,
            tenants: vec![template],
            up_to_date: 0,
        };
        // The fast path: one indexed query finds that nobody is behind.
        let behind = catalog::behind(&self.control, latest).await?;
        report.up_to_date = catalog::count_ready(&self.control)
            .await?
            .saturating_sub(behind.len());
        let lines: Vec<TenantMigration> = futures::stream::iter(behind)
            .map(|t| self.migrate_tenant(t))
            .buffer_unordered(options.concurrency.max(1))
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
        // The schema comes from the validated slug, never from elsewhere.
        let schema = self.schema_for(&tenant.slug);
        if tenant.placement
            != (Placement::Schema {
                schema: schema.clone(),
            })
        {
            return Err(Error::Conflict(format!(
                "tenant {} is not placed in a schema of this store",
                tenant.slug
            )));
        }
        let namespace = TableNamespace::Schema(schema);
        // Schema-qualified statements need no session state, so a single read can skip the
        // transaction. Through a pooler, statements must stay inside one (see the options).
        match (mode, self.options.tenant_url.is_some()) {
            (ScopeMode::Autocommit, false) => Ok(TenantScope::autocommit(
                tenant.id,
                namespace,
                self.tenants.clone(),
            )),
            _ => Ok(TenantScope::in_transaction(
                tenant.id,
                namespace,
                self.tenants.begin().await?,
            )),
        }
    }
    // ANCHOR_END: scope

    fn connections(&self) -> tenancy_core::Connections {
        let control = tenancy_core::Connections::of(&self.control);
        match &self.options.tenant_url {
            Some(_) => control + tenancy_core::Connections::of(&self.tenants),
            None => control,
        }
    }

    async fn unscoped_view(&self, table: &str) -> Result<UnscopedView> {
        // Unqualified: whatever the connection's default search_path finds, as forgetful
        // code would.
        UnscopedView::count(self.tenants.begin().await?, None, table).await
    }
}
