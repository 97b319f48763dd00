//! `tenancy-hybrid`: the three placements in one deployment, over one catalog.
//!
//! A [`HybridStore`] holds a store of each strategy on the same control database and routes
//! every tenant to the store of its placement: trial tenants in shared tables, bigger ones in
//! a schema of their own, the biggest in a database of their own (on any configured server).
//! A new tenant goes where [`NewTenant::placement`](tenancy_core::NewTenant::placement) asks,
//! or where [`HybridOptions::default_placement`] says.
//!
//! A tenant can be moved, live, between any two placements ([`HybridStore::move_tenant`]):
//! the catalog drives the move through its steps (see [`tenancy_core::MoveStep`]), reads go
//! on from the source until the flip, writes to the source are refused by a fence for the
//! short window of the copy ([`tenancy_core::Error::TenantMoving`]), and a move interrupted
//! at any step is rolled back or finished by [`HybridStore::resume_moves`].
//!
//! ```no_run
//! # // no_run: needs a PostgreSQL server; tests/it/moves.rs moves tenants on one.
//! # async fn run() -> tenancy_core::Result<()> {
//! use tenancy_core::{NewTenant, PlacementKind, Slug, TenantStore};
//! use tenancy_hybrid::{HybridOptions, HybridStore};
//!
//! // The application's own tenant migrations (here the workspace's example domain).
//! let options = HybridOptions::with_migrations(tenancy_example::migrations());
//! let store = HybridStore::connect("postgres://app@localhost/saas", options).await?;
//! let acme = store
//!     .create_tenant(NewTenant::new(Slug::parse("acme")?, "Acme").placed(PlacementKind::Shared))
//!     .await?;
//! // Acme upgraded: a database of its own, without stopping it.
//! store.move_tenant(acme.id, PlacementKind::Database, None).await?;
//! # Ok(()) }
//! ```
//!
//! The strategy crates never reach each other; this crate sits above the three.

#![warn(missing_docs)]

mod moves;
mod options;
mod store;

pub use moves::{MOVE_POINTS, MoveTimes, Resumed};
pub use options::{DefaultPlacement, HybridOptions, MoveOptions};
pub use store::HybridStore;
