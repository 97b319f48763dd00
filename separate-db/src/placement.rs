//! Where tenants go: the name of each tenant's database, and the server it is placed on.
//! Functions of the router's servers and the store's database prefix, below the store, which
//! calls them.

use tenancy_core::plumbing::catalog;
use tenancy_core::sea_orm::DatabaseConnection;
use tenancy_core::{Error, Placement, Result, Slug, Tenant};

use crate::router::Router;

// ANCHOR: database_names
/// The database of the tenant with this slug, for a store whose databases have `prefix`.
pub(crate) fn database_for(prefix: &str, slug: &Slug) -> String {
    format!("{prefix}{slug}")
}

/// The template database on every server.
pub(crate) fn template_database(prefix: &str) -> String {
    format!("{prefix}_template")
}
// ANCHOR_END: database_names

/// The configured server names, the control server first.
pub(crate) fn server_names(router: &Router) -> Vec<String> {
    router.servers.iter().map(|s| s.name.clone()).collect()
}

// ANCHOR: server_of
/// The server (its index in the router) and the database of `tenant`, whose placement must
/// be the database named from its slug on a server the store is configured with.
pub(crate) fn server_of(router: &Router, prefix: &str, tenant: &Tenant) -> Result<(usize, String)> {
    let expected = database_for(prefix, &tenant.slug);
    match &tenant.placement {
        Placement::Database { server, database } if *database == expected => router
            .server_index(server)
            .map(|i| (i, expected))
            .ok_or_else(|| {
                Error::Unavailable(format!(
                    "tenant {} is placed on server {server:?}, which this store is not configured with",
                    tenant.slug
                ))
            }),
        _ => Err(Error::misplaced(tenant, "a database of this store")),
    }
}
// ANCHOR_END: server_of

// ANCHOR: place
/// The configured server with the fewest tenants in the catalog (`control`), skipping servers
/// known to be down, or the one named.
pub(crate) async fn place(
    router: &Router,
    control: &DatabaseConnection,
    requested: Option<&str>,
) -> Result<usize> {
    if let Some(name) = requested {
        return router.server_index(name).ok_or_else(|| {
            Error::invalid(
                "server",
                format!(
                    "no server named {name:?}; configured: {}",
                    server_names(router).join(", ")
                ),
            )
        });
    }
    let mut counts = vec![0i64; router.servers.len()];
    for (name, n) in catalog::tenants_per_server(control).await? {
        if let Some(i) = router.server_index(&name) {
            counts[i] = n;
        }
    }
    let candidates: Vec<usize> = (0..counts.len())
        .filter(|&i| router.servers[i].is_up())
        .collect();
    let pool = if candidates.is_empty() {
        (0..counts.len()).collect()
    } else {
        candidates
    };
    Ok(pool
        .into_iter()
        .min_by_key(|&i| (counts[i], i))
        .unwrap_or(0))
}
// ANCHOR_END: place
