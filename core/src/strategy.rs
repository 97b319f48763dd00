//! Which store serves tenants ([`Strategy`]): named by the demo, the runners and the catalog's
//! counts, apart from the store contract so the catalog can name it without reaching the
//! contract that calls it.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::tenant::PlacementKind;

/// Which store serves tenants: one of the three strategies, each with its own placement, or
/// the hybrid store over all three. Where one tenant lives is a [`PlacementKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// A database per tenant, behind a router.
    SeparateDb,
    /// A schema per tenant in one database.
    SeparateSchema,
    /// Shared tables with a `tenant_id` column and row-level security.
    SharedSchema,
    /// All three placements in one catalog, a tenant in whichever it was given (crate
    /// `tenancy-hybrid`).
    Hybrid,
}

impl Strategy {
    /// The name used in features, settings and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::SeparateDb => "separate-db",
            Strategy::SeparateSchema => "separate-schema",
            Strategy::SharedSchema => "shared-schema",
            Strategy::Hybrid => "hybrid",
        }
    }
}

impl Strategy {
    /// Every strategy, the three placements' first.
    pub const ALL: [Strategy; 4] = [
        Strategy::SharedSchema,
        Strategy::SeparateSchema,
        Strategy::SeparateDb,
        Strategy::Hybrid,
    ];

    /// The one placement this strategy's store serves; `None` for the hybrid store, which
    /// serves all three.
    pub fn placement_kind(&self) -> Option<PlacementKind> {
        match self {
            Strategy::SharedSchema => Some(PlacementKind::Shared),
            Strategy::SeparateSchema => Some(PlacementKind::Schema),
            Strategy::SeparateDb => Some(PlacementKind::Database),
            Strategy::Hybrid => None,
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = crate::Error;
    /// Parses `shared-schema`, `separate-schema`, `separate-db` or `hybrid`: the one parser of
    /// strategy names (features, settings, command lines). Anything else is
    /// [`Error::Invalid`](crate::Error::Invalid) naming the four.
    fn from_str(s: &str) -> Result<Self> {
        Strategy::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                crate::Error::invalid(
                    "strategy",
                    format!(
                        "{s:?} is not a strategy: use one of shared-schema, separate-schema, \
                         separate-db, hybrid"
                    ),
                )
            })
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
