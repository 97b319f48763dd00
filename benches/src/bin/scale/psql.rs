//! separate-schema's physical baselines: the statements of a creation and of a new column run
//! by `psql`, timed beside the store's.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::ConnectionTrait;
use tenancy_testkit::TestDatabase;
use uuid::Uuid;

/// separate-schema's physical baselines, by `psql` on the run's database: each script runs in
/// one `psql` session, timed less the start-up of a `psql` that runs nothing (the least of
/// three, measured once).
pub(crate) struct PsqlBaselines {
    /// What a creation sends, and the tenants' schemas.
    store: tenancy_separate_schema::SeparateSchemaStore,
    url: String,
    start_up: Duration,
    dir: PathBuf,
}

impl PsqlBaselines {
    pub(crate) async fn new(db: &TestDatabase) -> Result<Self> {
        use tenancy_separate_schema::{SeparateSchemaOptions, SeparateSchemaStore};
        let dir = std::env::temp_dir().join(format!("tenancy-scale-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut baselines = PsqlBaselines {
            store: SeparateSchemaStore::connect(
                db.url(),
                SeparateSchemaOptions {
                    migrations: tenancy_example::migrations(),
                    ..SeparateSchemaOptions::default()
                },
            )
            .await?,
            url: tenancy_core::plumbing::loopback_without_tls(db.url()),
            start_up: Duration::ZERO,
            dir,
        };
        let start_up = (0..3)
            .map(|_| baselines.session("SELECT 1;\n"))
            .collect::<Result<Vec<_>>>()?;
        baselines.start_up = start_up.into_iter().min().unwrap_or_default();
        Ok(baselines)
    }

    /// Runs `script` in one `psql` session; how long it took, less the start-up.
    fn session(&self, script: &str) -> Result<Duration> {
        let file = self.dir.join("script.sql");
        std::fs::write(&file, script)?;
        let started = Instant::now();
        let out = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&file)
            .arg(&self.url)
            .output()
            .context("psql is missing: it comes with PostgreSQL's client programs")?;
        let took = started.elapsed();
        anyhow::ensure!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(took.saturating_sub(self.start_up))
    }

    /// A creation: `creates` schemas built with the DDL a creation runs, one transaction each
    /// (then dropped); the mean.
    pub(crate) async fn create(&self, creates: usize) -> Result<Duration> {
        use tenancy_core::{Slug, TenantId};
        let mut build = String::new();
        let mut drop = String::new();
        for i in 0..creates {
            let slug = Slug::parse(&format!("psql{i}"))?;
            let sql = self.store.provisioning_sql(&slug, TenantId::new()).await?;
            build.push_str(&format!("BEGIN;\n{sql};\nCOMMIT;\n"));
            drop.push_str(&format!(
                "DROP SCHEMA {} CASCADE;\n",
                tenancy_core::quote_ident(&self.store.schema_for(&slug))
            ));
        }
        let create = self.session(&build)? / u32::try_from(creates).unwrap_or(u32::MAX);
        self.session(&drop)?;
        Ok(create)
    }

    /// A migration, one transaction per tenant schema: the bare `ALTER TABLE ... ADD COLUMN`,
    /// and the same with the statements the store adds to each tenant's transaction (lock the
    /// catalog row, set and reset `search_path`, core's lookup of tables to pin as a prepared
    /// statement, update the catalog row). Returns (bare, with the bookkeeping).
    pub(crate) async fn add_column(&self, round: usize) -> Result<(Duration, Duration)> {
        use tenancy_core::Slug;
        let rows = self
            .store
            .connection(tenancy_core::plumbing::StrategyDoor)
            .query_all_raw(stmt("SELECT id, slug FROM tenancy.tenants", []))
            .await?;
        let (mut bare, mut kept) = (String::new(), String::new());
        // Every tenant schema has the same lookup (only `public` differs).
        let lookup = tenancy_core::plumbing::pin::unpinned_tables_sql("tenant");
        kept.push_str(&format!("PREPARE pin(text) AS {lookup};\n"));
        for row in rows {
            let slug = Slug::parse(&row.try_get::<String>("", "slug")?)?;
            let id: Uuid = row.try_get("", "id")?;
            let schema = self.store.schema_for(&slug);
            let q = tenancy_core::quote_ident(&schema);
            bare.push_str(&format!(
                "BEGIN;\nALTER TABLE {q}.projects ADD COLUMN psql_column_{round} integer;\nCOMMIT;\n"
            ));
            kept.push_str(&format!(
                "BEGIN;\nSELECT id FROM tenancy.tenants WHERE id = '{id}' FOR UPDATE;\n\
                 SET LOCAL search_path TO {q};\n\
                 ALTER TABLE projects ADD COLUMN psql_kept_{round} integer;\n\
                 SET LOCAL search_path TO DEFAULT;\nEXECUTE pin('{schema}');\n\
                 UPDATE tenancy.tenants SET schema_version = schema_version WHERE id = '{id}';\n\
                 COMMIT;\n"
            ));
        }
        Ok((self.session(&bare)?, self.session(&kept)?))
    }
}

impl Drop for PsqlBaselines {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}
