//! # tenancy-demo
//!
//! One actix-web app that serves any of the three strategies, chosen by cargo feature (and,
//! when several are compiled in, by `--strategy` or `TENANCY_STRATEGY`).
//!
//! Where a request goes: [`resolve`] finds the tenant (path, header or subdomain) and checks
//! the bearer token's membership → [`routes`] binds a scope to that tenant → the domain code
//! from `tenancy-core` runs in it → the scope commits. Errors become problem documents
//! ([`problem`]).

pub mod accounts;
pub mod cli;
pub mod database;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod resolve;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod strategy;
