//! The SQL the last requests sent through each tenant's scope, kept in memory for the
//! explorer page (`/explorer`): every scope a tenant route binds reports its statements here
//! ([`tenancy_core::StatementObserver`]). Only the statement text is kept, never its
//! parameters, and only the last [`Journal::KEPT`] per tenant, for at most
//! [`Journal::TENANTS`] tenants.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenancy_core::{StatementObserver, TenantId};

/// One statement a scope sent.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Sent {
    pub at: DateTime<Utc>,
    /// As sent, with `$1`, `$2` ... where the values went.
    pub sql: String,
}

/// The last statements per tenant.
#[derive(Debug, Default)]
pub struct Journal {
    by_tenant: Mutex<HashMap<TenantId, VecDeque<Sent>>>,
}

impl Journal {
    /// Statements kept per tenant.
    pub const KEPT: usize = 20;
    /// Tenants kept; past it, the journal forgets every tenant's (it is a teaching aid, not
    /// a log).
    pub const TENANTS: usize = 1_000;

    /// The statements `tenant`'s scopes sent, newest first.
    pub fn of(&self, tenant: TenantId) -> Vec<Sent> {
        let map = tenancy_core::plumbing::sync::lock(&self.by_tenant, "the statement journal");
        map.get(&tenant)
            .map(|q| q.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

impl StatementObserver for Journal {
    fn statement(&self, tenant: TenantId, sql: &str) {
        let mut map = tenancy_core::plumbing::sync::lock(&self.by_tenant, "the statement journal");
        if map.len() >= Self::TENANTS && !map.contains_key(&tenant) {
            map.clear();
        }
        let q = map.entry(tenant).or_default();
        if q.len() == Self::KEPT {
            q.pop_front();
        }
        q.push_back(Sent {
            at: Utc::now(),
            sql: sql.to_owned(),
        });
    }
}
