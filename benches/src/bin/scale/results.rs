//! One strategy's results: what a run writes to `scale-<strategy>-<tenants>.json` and the
//! charts read back.

use serde::{Deserialize, Serialize};
use tenancy_benches::Measured;

/// One strategy's results.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Results {
    pub(crate) date: String,
    pub(crate) machine: String,
    pub(crate) postgres: String,
    pub(crate) measured: Measured,
    pub(crate) strategy: String,
    /// `citus` when the run was on a Citus cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cluster: Option<String>,
    pub(crate) tenants: usize,
    pub(crate) projects_per_tenant: usize,
    pub(crate) tenants_created_per_second: f64,
    /// One more tenant created with `tenants` present, one at a time: the mean.
    pub(crate) create_one_ms: f64,
    /// separate-schema only: the same DDL run by `psql`, one transaction per schema, one
    /// session (its start-up subtracted): the physical baseline of a creation.
    pub(crate) psql_create_one_ms: Option<f64>,
    /// Tenants migrated at once (`MigrateOptions::concurrency`).
    #[serde(default)]
    pub(crate) migrate_concurrency: usize,
    pub(crate) migrate_nothing_pending_ms: f64,
    /// The median of `rounds` runs, each adding one more column.
    pub(crate) migrate_one_column_ms: f64,
    #[serde(default)]
    pub(crate) rounds: usize,
    /// separate-schema only: one `ALTER TABLE ... ADD COLUMN` per tenant schema run by
    /// `psql`, one transaction each, one session, over the same schemas; the median of
    /// `rounds`, each run right after the store's.
    pub(crate) psql_add_column_ms: Option<f64>,
    /// separate-schema only: the same by `psql` with the statements the store adds to each
    /// tenant's transaction (catalog lock and update, `search_path` set and reset, the pin
    /// lookup as a prepared statement): what the store's bookkeeping costs at the limit.
    #[serde(default)]
    pub(crate) psql_add_column_bookkept_ms: Option<f64>,
    pub(crate) reads: usize,
    pub(crate) concurrency: usize,
    pub(crate) read_p50_us: f64,
    pub(crate) read_p99_us: f64,
    pub(crate) reads_per_second: f64,
    /// Most connections the store held on the server during the load.
    pub(crate) server_connections: i64,
    /// Proportional set size of the store's backends after the load, in MB (None when
    /// `/proc` is not readable).
    pub(crate) backend_memory_mb: Option<f64>,
    pub(crate) disk_per_tenant_kb: f64,
}

impl Results {
    /// The strategy, and `on Citus` when it ran there: a bar's label.
    pub(crate) fn label(&self) -> String {
        match &self.cluster {
            Some(c) => format!(
                "{} on {}",
                self.strategy,
                if c == "citus" { "Citus" } else { c }
            ),
            None => self.strategy.clone(),
        }
    }
}
