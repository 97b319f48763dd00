//! Per-tenant usage: what each tenant's scopes sent (statements, their time, their rows) and
//! the room each tenant's tables take.
//!
//! Statements are counted by the scope itself, after each one returns, so every strategy
//! counts the same way and nothing the domain sends escapes it. The counts are **this
//! process's**, since it started: every process keeps its own, and a figure summed over
//! processes is the sum of what each reports (a metrics scraper's job). Storage is read from
//! the database when asked for ([`TenantStore::usage`](crate::TenantStore::usage)), so it is
//! the same from every process.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plumbing::sync::lock;
use crate::tenant::TenantId;

/// What one tenant's scopes sent in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatementUsage {
    /// Statements sent (the reads and writes of the domain, and a quota's count and lock).
    pub statements: u64,
    /// Their time, from sending to the last row, in microseconds.
    pub micros: u64,
    /// Rows they returned (a read) or touched (a write).
    pub rows: u64,
}

impl StatementUsage {
    fn add(&mut self, other: StatementUsage) {
        self.statements += other.statements;
        self.micros += other.micros;
        self.rows += other.rows;
    }
}

static METER: LazyLock<Mutex<HashMap<TenantId, StatementUsage>>> = LazyLock::new(Default::default);

/// Counts one statement of `tenant`'s (called by the scope).
pub(crate) fn record(tenant: TenantId, elapsed: Duration, rows: u64) {
    let one = StatementUsage {
        statements: 1,
        micros: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        rows,
    };
    lock(&METER, "the usage meter")
        .entry(tenant)
        .or_default()
        .add(one);
}

/// What `tenant`'s scopes sent in this process so far.
pub fn statements_of(tenant: TenantId) -> StatementUsage {
    lock(&METER, "the usage meter")
        .get(&tenant)
        .copied()
        .unwrap_or_default()
}

/// The `n` tenants whose scopes sent the most statements in this process, busiest first, and
/// the sum of all the others': a bounded set of figures for a metrics page, whatever the
/// number of tenants.
pub fn busiest(n: usize) -> (Vec<(TenantId, StatementUsage)>, StatementUsage) {
    let mut all: Vec<(TenantId, StatementUsage)> = lock(&METER, "the usage meter")
        .iter()
        .map(|(t, u)| (*t, *u))
        .collect();
    all.sort_by(|a, b| {
        b.1.statements
            .cmp(&a.1.statements)
            .then(b.1.micros.cmp(&a.1.micros))
            .then(a.0.cmp(&b.0))
    });
    let mut rest = StatementUsage::default();
    for (_, u) in all.iter().skip(n) {
        rest.add(*u);
    }
    all.truncate(n);
    (all, rest)
}

/// Forgets `tenant`'s counts (when it is deleted).
pub fn forget(tenant: TenantId) {
    lock(&METER, "the usage meter").remove(&tenant);
}

/// The room one of a tenant's tables takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableStorage {
    /// The table's name.
    pub table: String,
    /// The tenant's rows in it.
    pub rows: u64,
    /// Bytes: the table's heap, indexes and TOAST, or for a shared table the tenant's share
    /// of them by rows (see [`Storage::estimated`]).
    pub bytes: u64,
}

/// The room a tenant's tables take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Storage {
    /// Bytes over all its tables.
    pub bytes: u64,
    /// `true` when the tables are shared with other tenants: the bytes are then the tenant's
    /// share of each table's, by its rows against the table's estimated row count, not a
    /// measure (rows differ in width, and dead rows and index bloat belong to no tenant).
    pub estimated: bool,
    /// Table by table.
    pub tables: Vec<TableStorage>,
}

/// Citus' own statistics of one tenant (`citus_stat_tenants`), where the store runs on Citus
/// with `citus.stat_tenants_track = 'all'`: counted by the cluster, over every process,
/// for the current period and the one before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CitusTenantStats {
    /// How Citus names the tenant: its `tenant_id` (distributed tables) or its schema.
    pub attribute: String,
    /// Read queries routed to the tenant in this period.
    pub read_count_in_this_period: i64,
    /// Read queries in the period before.
    pub read_count_in_last_period: i64,
    /// All queries routed to the tenant in this period.
    pub query_count_in_this_period: i64,
    /// All queries in the period before.
    pub query_count_in_last_period: i64,
    /// CPU seconds its queries took on the workers in this period.
    pub cpu_usage_in_this_period: f64,
    /// CPU seconds in the period before.
    pub cpu_usage_in_last_period: f64,
}

/// One tenant's usage, from [`TenantStore::usage`](crate::TenantStore::usage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantUsage {
    /// What its scopes sent in **this process** since it started.
    pub statements: StatementUsage,
    /// The room its tables take, read now from the database.
    pub storage: Storage,
    /// Citus' statistics of it, where the store runs on Citus and tracks tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citus: Option<CitusTenantStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_are_kept_and_the_rest_summed() {
        let a = TenantId::new();
        let b = TenantId::new();
        let c = TenantId::new();
        for _ in 0..3 {
            record(a, Duration::from_micros(10), 2);
        }
        record(b, Duration::from_micros(5), 1);
        record(c, Duration::from_micros(7), 4);
        let (top, rest) = busiest(usize::MAX);
        let mine: Vec<_> = top.iter().filter(|(t, _)| [a, b, c].contains(t)).collect();
        assert_eq!(mine[0].0, a, "the busiest first");
        assert_eq!(statements_of(a).statements, 3);
        assert_eq!(statements_of(a).rows, 6);
        assert_eq!(statements_of(a).micros, 30);
        let everyone: u64 = top.iter().map(|(_, u)| u.statements).sum::<u64>() + rest.statements;
        let (top1, rest1) = busiest(1);
        assert_eq!(top1.len(), 1);
        assert_eq!(
            top1[0].1.statements + rest1.statements,
            everyone,
            "the summed rest keeps every statement"
        );
        forget(a);
        assert_eq!(statements_of(a), StatementUsage::default());
    }
}
