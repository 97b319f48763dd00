//! # tenancy-demo
//!
//! One actix-web app that serves any of the three strategies, chosen by cargo feature (and,
//! when several are compiled in, by `--strategy` or `TENANCY_STRATEGY`).
//!
//! Where a request goes, one module a step:
//!
//! 1. [`identity`]: the [`authorize`](identity::authorize) middleware turns the bearer token
//!    into a user (401 without a valid one), the tenant the request names (path, header or
//!    subdomain) into a tenant, and the pair into a membership (404 for an unknown tenant and a
//!    non-member alike), and leaves the [`Member`](identity::Member) in the request;
//! 2. [`scoped`]: the handler's [`Scoped`](scoped::Scoped) or
//!    [`ScopedRead`](scoped::ScopedRead) argument binds a scope to that member's tenant;
//! 3. [`routes`]: the handler runs the domain code from `tenancy-core` in the scope and
//!    commits;
//! 4. [`problem`]: any error becomes a problem document.
//!
//! Around them: [`startup`] opens the store ([`strategy`]), the catalog pool and the demo's
//! own tables ([`accounts`]), and builds the server; [`cli`] is the command line. The
//! configuration's static tenants ([`statics`]) are kept apart from the customers'.

pub mod accounts;
pub mod body;
pub mod cli;
pub mod database;
pub mod identity;
pub mod journal;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod rules;
pub mod scoped;
pub mod settings;
pub mod startup;
pub mod state;
pub mod statics;
pub mod strategy;
