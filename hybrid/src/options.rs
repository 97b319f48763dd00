//! How a hybrid store is configured.

use std::time::Duration;

use tenancy_core::{PlacementKind, Slug};
use tenancy_separate_db::SeparateDbOptions;
use tenancy_separate_schema::SeparateSchemaOptions;
use tenancy_shared_schema::SharedSchemaOptions;

/// Where a new tenant goes when its [`NewTenant`](tenancy_core::NewTenant) does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPlacement {
    /// Always this placement (the usual choice: shared tables for new sign-ups).
    Fixed(PlacementKind),
    /// One of the three by the slug (a fixed function of its bytes): for tests and demos
    /// that want every placement in use.
    Spread,
}

impl DefaultPlacement {
    /// The placement of a new tenant with this slug.
    pub fn for_slug(&self, slug: &Slug) -> PlacementKind {
        match self {
            DefaultPlacement::Fixed(s) => *s,
            DefaultPlacement::Spread => {
                let sum: u32 = slug.as_str().bytes().map(u32::from).sum();
                PlacementKind::ALL[(sum % 3) as usize]
            }
        }
    }
}

/// How moves run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveOptions {
    /// How long the fence waits for the writes in flight on the source (a lock wait); a move
    /// that cannot fence within it is rolled back.
    pub lock_timeout: Duration,
    /// How long after the flip the source is kept, still fenced, before it is purged: the
    /// time other processes have to see the flip (they are told at once through
    /// `LISTEN/NOTIFY`) and finish the reads they started on the source.
    pub drain: Duration,
}

impl Default for MoveOptions {
    fn default() -> Self {
        MoveOptions {
            lock_timeout: Duration::from_secs(5),
            drain: Duration::from_secs(2),
        }
    }
}

/// The options of a [`HybridStore`](crate::HybridStore): one set per placement, and where
/// new tenants go. Start from [`HybridOptions::with_migrations`]: the default has no tenant
/// migrations, which the store refuses.
#[derive(Debug, Clone)]
pub struct HybridOptions {
    /// The shared tables.
    pub shared: SharedSchemaOptions,
    /// The schema per tenant.
    pub schema: SeparateSchemaOptions,
    /// The database per tenant: its control server is the hybrid's database; more servers
    /// may be configured.
    pub database: SeparateDbOptions,
    /// Where a new tenant goes when its [`NewTenant`](tenancy_core::NewTenant) names no placement.
    pub default_placement: DefaultPlacement,
    /// How moves wait: lock timeout and drain.
    pub moves: MoveOptions,
}

impl HybridOptions {
    /// The default options, with the application's tenant migrations `migrations` given to
    /// all three placements (a hybrid store needs the same list in each).
    pub fn with_migrations(migrations: tenancy_core::TenantMigrations) -> Self {
        let mut o = HybridOptions::default();
        o.shared.migrations = migrations.clone();
        o.schema.migrations = migrations.clone();
        o.database.migrations = migrations;
        o
    }
}

impl Default for HybridOptions {
    fn default() -> Self {
        HybridOptions {
            shared: SharedSchemaOptions::default(),
            schema: SeparateSchemaOptions::default(),
            database: SeparateDbOptions::default(),
            default_placement: DefaultPlacement::Fixed(PlacementKind::Shared),
            moves: MoveOptions::default(),
        }
    }
}
