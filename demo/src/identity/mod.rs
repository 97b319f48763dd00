//! Who is asking, and for which tenant, in the order a request is checked: the bearer token
//! to its user, the tenant slug to its tenant, the (user, tenant) pair to a role, each through
//! an in-process cache; then the [`authorize`] middleware that runs those checks in front of
//! every tenant route and the [`Member`] and [`Admin`] extractors handlers take.
//!
//! The order of checks is fixed: the token first (401 without a valid one), then the tenant
//! (404 when unknown), then the membership (404 as well, so a token cannot probe which tenants
//! exist).
//!
//! One job a file: `hashing` (a bearer token hashed once), `limits` (the request rates),
//! `cache` (the lookups behind their three caches), `listen` (the LISTEN loop that keeps the
//! caches in step with the database) and `extract` (the middleware and the extractors).

mod cache;
mod extract;
mod hashing;
mod limits;
mod listen;

pub use cache::Identity;
pub use extract::{Admin, Member, authorize};
pub use hashing::HashedToken;
pub use limits::Limits;
pub use listen::listen;

/// The channel the demo's account tables announce changes on (see the accounts migration).
pub const ACCOUNTS_CHANNEL: &str = "tenancy_accounts";
