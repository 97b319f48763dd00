//! Quotas from a plan: what a tenant may add, by the plan it is on.
//!
//! A [`Plan`] sets limits the application defines: a number of rows per tenant table (the
//! example app's free plan: 100 projects, 1,000 tasks) and a storage limit. The catalog records
//! which plan each tenant is on ([`Tenant::plan`], changed with
//! [`TenantStore::set_plan`](crate::TenantStore::set_plan) and announced to every process);
//! the application configures what each plan allows, as [`Plans`].
//!
//! A row limit is checked inside the write's own transaction, under a lock held until it ends
//! ([`Plan::ensure_room`]): of concurrent writers at the edge, each counts after the one before
//! it committed, so the rows never end above the limit. A tenant over its plan (an import or a
//! move carries every row, whatever the plan; a plan lowered under what it holds) keeps reading,
//! changing and deleting; only adding is refused, until it is back under.

use std::collections::BTreeMap;

use sea_orm::sea_query::{Expr, ExprTrait};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::scope::TenantScope;
use crate::tenant::Tenant;
use crate::usage::Storage;

/// What one plan allows a tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// At most this many rows per tenant table, by table name; a table not named has no limit.
    #[serde(default)]
    pub rows: BTreeMap<String, u64>,
    /// At most this many bytes over all the tenant's tables (see [`Storage`]); `None`: none.
    #[serde(default)]
    pub storage_bytes: Option<u64>,
}

/// A plan by name, with its [`Limits`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    /// Its name, as the catalog records it on a tenant.
    pub name: String,
    /// What it allows.
    pub limits: Limits,
}

/// The plans an application offers, and the one a tenant without a plan is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plans {
    plans: BTreeMap<String, Plan>,
    default: String,
}

impl Plans {
    /// The plans `limits` names, with `default` for a tenant on none. Refuses a default that is
    /// not one of them, and a plan name that is blank or longer than 63 bytes.
    pub fn new(default: &str, limits: BTreeMap<String, Limits>) -> Result<Self> {
        if let Some(bad) = limits.keys().find(|n| n.trim().is_empty() || n.len() > 63) {
            return Err(Error::invalid(
                "plans",
                format!("{bad:?} is not a plan name (1 to 63 bytes, not blank)"),
            ));
        }
        if !limits.contains_key(default) {
            return Err(Error::invalid(
                "plans",
                format!("the default plan {default:?} is not one of the plans"),
            ));
        }
        Ok(Plans {
            plans: limits
                .into_iter()
                .map(|(name, limits)| (name.clone(), Plan { name, limits }))
                .collect(),
            default: default.to_owned(),
        })
    }

    /// One plan with no limit, the default: what an application without plans has.
    pub fn unlimited() -> Self {
        Plans::new(
            "unlimited",
            [("unlimited".to_owned(), Limits::default())].into(),
        )
        .expect("the unlimited plan is valid")
    }

    /// The plan called `name`, or [`Error::Invalid`] naming the plans there are.
    pub fn get(&self, name: &str) -> Result<&Plan> {
        self.plans.get(name).ok_or_else(|| {
            Error::invalid(
                "plan",
                format!(
                    "{name:?} is not a plan (the plans: {})",
                    self.plans.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    /// The plan a tenant without one is on.
    pub fn default_plan(&self) -> &Plan {
        &self.plans[&self.default]
    }

    /// Every plan, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Plan> {
        self.plans.values()
    }

    /// The plan `tenant` is on. A tenant on a plan this application does not offer (one
    /// another process's settings named) is held to the default plan, and a warning logged.
    pub fn of(&self, tenant: &Tenant) -> &Plan {
        match tenant.plan.as_deref() {
            None => self.default_plan(),
            Some(name) => self.plans.get(name).unwrap_or_else(|| {
                tracing::warn!(tenant = %tenant.slug, plan = name,
                    "the tenant's plan is not configured here: the default plan applies");
                self.default_plan()
            }),
        }
    }
}

impl Plan {
    // ANCHOR: ensure_room
    /// Before adding `adding` rows to `table` through `scope`: refuses with
    /// [`Error::QuotaExceeded`] when the tenant's rows there would pass the plan's limit.
    ///
    /// Takes the tenant's lock on the table first (a transaction-level advisory lock, held
    /// until the scope commits or rolls back), then counts: a concurrent writer at the edge
    /// waits, and counts after this transaction's rows are in. So the scope must be a
    /// transaction ([`ScopeMode::Transaction`](crate::ScopeMode::Transaction); an autocommit
    /// scope is refused with [`Error::Invalid`], a read-only one with [`Error::ReadOnly`]), and
    /// the rows must be added in the same scope. A table the plan does not limit costs nothing.
    pub async fn ensure_room(&self, scope: &TenantScope, table: &str, adding: u64) -> Result<()> {
        let Some(&limit) = self.limits.rows.get(table) else {
            return Ok(());
        };
        scope.lock_for_quota(table).await?;
        let mut count = scope.select(table, "t");
        count.expr(Expr::col(crate::TENANT_ID).count());
        let used: i64 = scope
            .query_one_rendered(scope.built(&count)?)
            .await?
            .map(|row| row.try_get_by_index(0))
            .transpose()?
            .unwrap_or(0);
        let used = u64::try_from(used).unwrap_or(0);
        if used.saturating_add(adding) > limit {
            return Err(Error::QuotaExceeded {
                plan: self.name.clone(),
                what: table.to_owned(),
                limit,
                used,
            });
        }
        Ok(())
    }
    // ANCHOR_END: ensure_room

    /// Refuses with [`Error::QuotaExceeded`] when `storage` (the tenant's, from
    /// [`TenantStore::usage`](crate::TenantStore::usage)) is at or past the plan's storage
    /// limit. Storage is not counted per write: a figure some seconds old is enough to stop
    /// a tenant growing far past its plan, not to stop it at the byte.
    pub fn ensure_storage(&self, storage: &Storage) -> Result<()> {
        match self.limits.storage_bytes {
            Some(limit) if storage.bytes >= limit => Err(Error::QuotaExceeded {
                plan: self.name.clone(),
                what: "storage bytes".into(),
                limit,
                used: storage.bytes,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_plan_must_be_one_of_the_plans() {
        let free = Limits {
            rows: [("tasks".to_owned(), 10)].into(),
            storage_bytes: Some(1000),
        };
        assert!(Plans::new("pro", [("free".to_owned(), free.clone())].into()).is_err());
        assert!(Plans::new(" ", [(" ".to_owned(), free.clone())].into()).is_err());
        let plans = Plans::new("free", [("free".to_owned(), free)].into()).expect("valid plans");
        assert_eq!(plans.default_plan().name, "free");
        assert!(matches!(plans.get("gold"), Err(Error::Invalid { .. })));
    }

    #[test]
    fn storage_at_the_limit_is_refused() {
        let plan = Plan {
            name: "free".into(),
            limits: Limits {
                rows: BTreeMap::new(),
                storage_bytes: Some(1000),
            },
        };
        let at = |bytes| Storage {
            bytes,
            estimated: false,
            tables: vec![],
        };
        assert!(plan.ensure_storage(&at(999)).is_ok());
        assert!(matches!(
            plan.ensure_storage(&at(1000)),
            Err(Error::QuotaExceeded {
                limit: 1000,
                used: 1000,
                ..
            })
        ));
    }
}
