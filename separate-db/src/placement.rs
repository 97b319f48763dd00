//! Where tenants go: the name of each tenant's database, and the server it is placed on.

use tenancy_core::plumbing::catalog;
use tenancy_core::{Error, Placement, Result, Slug, Tenant};

use crate::store::SeparateDbStore;

impl SeparateDbStore {
    // ANCHOR: database_names
    /// The database of the tenant with this slug.
    pub fn database_for(&self, slug: &Slug) -> String {
        format!("{}{slug}", self.inner.prefix)
    }

    /// The template database on every server.
    pub fn template_database(&self) -> String {
        format!("{}_template", self.inner.prefix)
    }
    // ANCHOR_END: database_names

    /// The configured server names, the control server first.
    pub fn servers(&self) -> Vec<String> {
        self.inner
            .router
            .servers
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    // ANCHOR: server_of
    pub(crate) fn server_of(&self, tenant: &Tenant) -> Result<(usize, String)> {
        let expected = self.database_for(&tenant.slug);
        match &tenant.placement {
            Placement::Database { server, database } if *database == expected => self
                .inner
                .router
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
    /// The configured server with the fewest tenants (skipping servers known to be down),
    /// or the one named.
    pub(crate) async fn place(&self, requested: Option<&str>) -> Result<usize> {
        let router = &self.inner.router;
        if let Some(name) = requested {
            return router.server_index(name).ok_or_else(|| {
                Error::invalid(
                    "server",
                    format!(
                        "no server named {name:?}; configured: {}",
                        self.servers().join(", ")
                    ),
                )
            });
        }
        let mut counts = vec![0i64; router.servers.len()];
        for (name, n) in catalog::tenants_per_server(&self.inner.control).await? {
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
}
