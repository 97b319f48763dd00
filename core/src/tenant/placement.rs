//! Where a tenant lives: the placement kind (shared tables, a schema, a database) and the
//! placement the catalog records.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

// ANCHOR: placement_kind
/// The one word for where a tenant lives: shared tables, a schema of its own, or a database of its
/// own. Used by [`NewTenant::placement`](crate::NewTenant::placement), the catalog's [`Placement`]
/// (as its `kind`), the hybrid store, the demo's API and CLI and the benches. Parsed from and shown
/// as `shared`, `schema`, `database`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PlacementKind {
    /// Shared tables, told apart by `tenant_id` (served by the shared-schema strategy).
    Shared,
    /// A schema of its own in the one database (separate-schema).
    Schema,
    /// A database of its own on one of the configured servers (separate-db).
    Database,
}
// ANCHOR_END: placement_kind

impl PlacementKind {
    /// Every placement kind, in the order the book presents them.
    pub const ALL: [PlacementKind; 3] = [
        PlacementKind::Shared,
        PlacementKind::Schema,
        PlacementKind::Database,
    ];

    /// The name it is parsed from and shown as.
    pub fn as_str(&self) -> &'static str {
        match self {
            PlacementKind::Shared => "shared",
            PlacementKind::Schema => "schema",
            PlacementKind::Database => "database",
        }
    }

    /// The strategy whose store serves tenants placed so.
    pub fn strategy(&self) -> crate::Strategy {
        match self {
            PlacementKind::Shared => crate::Strategy::SharedSchema,
            PlacementKind::Schema => crate::Strategy::SeparateSchema,
            PlacementKind::Database => crate::Strategy::SeparateDb,
        }
    }
}

impl fmt::Display for PlacementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PlacementKind {
    type Err = Error;
    /// Parses `shared`, `schema` or `database`; anything else is [`Error::Invalid`] naming
    /// the three.
    fn from_str(s: &str) -> Result<Self, Error> {
        PlacementKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "placement",
                    format!("{s:?} is not a placement: use one of shared, schema, database"),
                )
            })
    }
}

/// Where a tenant's rows live. Recorded in the catalog when the tenant is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Placement {
    /// Shared tables, told apart by `tenant_id`.
    Shared,
    /// A schema of its own in the one database.
    Schema {
        /// The schema's name.
        schema: String,
    },
    /// A database of its own on one of the configured servers.
    Database {
        /// The configured server's name.
        server: String,
        /// The database's name on it.
        database: String,
    },
}

impl Placement {
    /// Which of the three placements this is.
    pub fn kind(&self) -> PlacementKind {
        match self {
            Placement::Shared => PlacementKind::Shared,
            Placement::Schema { .. } => PlacementKind::Schema,
            Placement::Database { .. } => PlacementKind::Database,
        }
    }

    /// The strategy that serves tenants placed here.
    pub fn strategy(&self) -> crate::Strategy {
        self.kind().strategy()
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Shared => f.write_str("shared tables"),
            Placement::Schema { schema } => write!(f, "schema {schema}"),
            Placement::Database { server, database } => {
                write!(f, "database {database} on server {server}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_kinds_parse_what_they_show_and_nothing_else() {
        for kind in PlacementKind::ALL {
            assert_eq!(kind.as_str().parse::<PlacementKind>().ok(), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::String(kind.to_string()))
            );
        }
        for bad in ["separate-db", "hybrid", "Shared", ""] {
            assert!(bad.parse::<PlacementKind>().is_err(), "{bad:?}");
        }
    }
}
