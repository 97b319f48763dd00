//! Static and dynamic tenants, as django-pgschemas means them. Static tenants are declared in
//! the configuration ([`Settings::tenants`](crate::settings::Settings::tenants)), each with a
//! purpose of its own (`www` serves the public sign-up); the app creates them at start, lists
//! them apart, and refuses to delete or move them through the API. Every other tenant is
//! dynamic: a customer, created by the admin API, the command line or the sign-up.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::problem::ApiError;
use crate::settings::{Purpose, StaticTenant};

/// Whether a tenant is one the configuration declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Declared in the configuration, with a purpose; kept by the app.
    Static,
    /// A customer's.
    Dynamic,
}

/// The static tenants of the configuration, by slug.
#[derive(Debug, Clone, Default)]
pub struct StaticTenants {
    by_slug: BTreeMap<String, Purpose>,
}

impl StaticTenants {
    pub fn new(declared: &[StaticTenant]) -> Self {
        StaticTenants {
            by_slug: declared
                .iter()
                .map(|t| (t.slug.clone(), t.purpose))
                .collect(),
        }
    }

    /// The purpose of the static tenant `slug`; `None` for a dynamic one.
    pub fn purpose(&self, slug: &str) -> Option<Purpose> {
        self.by_slug.get(slug).copied()
    }

    pub fn kind(&self, slug: &str) -> Kind {
        match self.purpose(slug) {
            Some(_) => Kind::Static,
            None => Kind::Dynamic,
        }
    }

    /// 409 when `slug` is static: what may not be done to it through the API or the command
    /// line (`deleted`, `moved`, `created`).
    pub fn refuse(&self, slug: &str, what: &str) -> Result<(), ApiError> {
        match self.purpose(slug) {
            Some(purpose) => Err(ApiError::Conflict(format!(
                "tenant {slug:?} is static (declared in the configuration, purpose {}): it cannot \
                 be {what} here; change the configuration's `tenants` instead",
                purpose.as_str()
            ))),
            None => Ok(()),
        }
    }
}
