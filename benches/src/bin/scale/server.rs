//! What a run reads from the machine and the server: the machine's cores and memory, one
//! value of a query, the run's databases, and its backends (on a Citus cluster, the workers'
//! too) and their memory.

use anyhow::{Context, Result};
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::ConnectionTrait;

pub(crate) fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} cores, {mem_gib:.0} GiB")
}

pub(crate) async fn scalar<T: tenancy_core::sea_orm::TryGetable>(
    conn: &impl ConnectionTrait,
    sql: &str,
    values: Vec<tenancy_core::sea_orm::Value>,
) -> Result<T> {
    let row = conn
        .query_one_raw(stmt(sql, values))
        .await?
        .context("no row")?;
    Ok(row.try_get_by_index::<T>(0)?)
}

/// Databases of this run: the control database and any tenant databases named after it.
pub(crate) const OURS: &str = "(datname = $1 OR starts_with(datname, $1 || '_'))";

/// The pids of the run's backends on every worker of a Citus cluster (the coordinator's are
/// found as on one server), read through the coordinator on the run's database.
pub(crate) async fn worker_pids(db: &impl ConnectionTrait) -> Result<Vec<i32>> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT result FROM run_command_on_workers($$SELECT coalesce(string_agg(pid::text, \
             ','), '') FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid()$$)",
            [],
        ))
        .await?;
    let mut pids = Vec::new();
    for r in rows {
        let list: String = r.try_get("", "result")?;
        for pid in list.split(',').filter(|p| !p.is_empty()) {
            pids.push(pid.parse()?);
        }
    }
    Ok(pids)
}

/// A process's proportional set size in kB, from `/proc/<pid>/smaps_rollup`.
pub(crate) fn pss_kb(pid: i32) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
