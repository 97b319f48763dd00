//! Which strategies this build contains, and how a store of each is opened: the one place
//! that does, for the demo and the benches alike.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use tenancy_core::migration::TenantMigrations;
use tenancy_core::{Strategy, TenantStore};

use crate::settings::{ServerSettings, Settings};

/// The strategies compiled into this build, in order of preference.
pub const COMPILED: &[Strategy] = &[
    #[cfg(feature = "shared-schema")]
    Strategy::SharedSchema,
    #[cfg(feature = "separate-schema")]
    Strategy::SeparateSchema,
    #[cfg(feature = "separate-db")]
    Strategy::SeparateDb,
];

/// The strategy `name` names, or the first compiled in when `None`; a clear error when it
/// is unknown or not compiled in.
pub fn pick(name: Option<&str>) -> Result<Strategy> {
    let all = [
        Strategy::SharedSchema,
        Strategy::SeparateSchema,
        Strategy::SeparateDb,
    ];
    let Some(name) = name else {
        return match COMPILED.first() {
            Some(s) => Ok(*s),
            None => bail!(
                "no strategy is compiled in: build with --features shared-schema, separate-schema or separate-db"
            ),
        };
    };
    let Some(wanted) = all.into_iter().find(|s| s.as_str() == name) else {
        bail!("unknown strategy {name:?}: expected shared-schema, separate-schema or separate-db")
    };
    if !COMPILED.contains(&wanted) {
        bail!(
            "strategy {name} is not compiled into this build; rebuild with `--features {name}` \
             (or `--features all-strategies`)"
        );
    }
    Ok(wanted)
}

/// How [`open`] configures a store. `None` keeps the library's default (the benches run the
/// strategies so); a field a strategy has no use for is ignored by it.
#[derive(Debug, Clone, Default)]
pub struct StoreSettings {
    /// shared-schema and separate-schema: the most connections the store holds.
    pub max_connections: Option<u32>,
    /// separate-db: the most connections the store holds to each server.
    pub connections_per_server: Option<u32>,
    /// How long a request waits for a connection.
    pub acquire_timeout: Option<Duration>,
    /// How long a tenant statement may run.
    pub statement_timeout: Option<Duration>,
    /// separate-db: more servers to place tenants on.
    pub servers: Vec<ServerSettings>,
    /// The tenant migrations.
    pub migrations: TenantMigrations,
}

impl From<&Settings> for StoreSettings {
    /// The demo's settings: `max_connections` per store (per server for separate-db, at
    /// least 4 there, which leaves room for tenant pools beside the control pool).
    fn from(settings: &Settings) -> Self {
        StoreSettings {
            max_connections: Some(settings.max_connections),
            connections_per_server: Some(settings.max_connections.max(4)),
            acquire_timeout: Some(Duration::from_secs(settings.acquire_timeout_secs)),
            statement_timeout: Some(Duration::from_millis(settings.statement_timeout_ms))
                .filter(|t| !t.is_zero()),
            servers: settings.servers.clone(),
            migrations: TenantMigrations::default(),
        }
    }
}

/// Opens the store of `strategy` on `url` (which installs the catalog when missing).
#[cfg_attr(
    not(any(
        feature = "shared-schema",
        feature = "separate-schema",
        feature = "separate-db"
    )),
    allow(unused_variables)
)]
pub async fn open(
    strategy: Strategy,
    url: &str,
    settings: &StoreSettings,
) -> Result<Arc<dyn TenantStore>> {
    let migrations = settings.migrations.clone();
    match strategy {
        #[cfg(feature = "shared-schema")]
        Strategy::SharedSchema => {
            use tenancy_shared_schema::{SharedSchemaOptions, SharedSchemaStore};
            let d = SharedSchemaOptions::default();
            let options = SharedSchemaOptions {
                max_connections: settings.max_connections.unwrap_or(d.max_connections),
                acquire_timeout: settings.acquire_timeout.unwrap_or(d.acquire_timeout),
                statement_timeout: settings.statement_timeout.or(d.statement_timeout),
                migrations,
                ..d
            };
            Ok(Arc::new(SharedSchemaStore::connect(url, options).await?))
        }
        #[cfg(feature = "separate-schema")]
        Strategy::SeparateSchema => {
            use tenancy_separate_schema::{SeparateSchemaOptions, SeparateSchemaStore};
            let d = SeparateSchemaOptions::default();
            let options = SeparateSchemaOptions {
                max_connections: settings.max_connections.unwrap_or(d.max_connections),
                acquire_timeout: settings.acquire_timeout.unwrap_or(d.acquire_timeout),
                statement_timeout: settings.statement_timeout.or(d.statement_timeout),
                migrations,
                ..d
            };
            Ok(Arc::new(SeparateSchemaStore::connect(url, options).await?))
        }
        #[cfg(feature = "separate-db")]
        Strategy::SeparateDb => {
            use secrecy::ExposeSecret;
            use tenancy_separate_db::{SeparateDbOptions, SeparateDbStore, ServerConfig};
            let d = SeparateDbOptions::default();
            let servers = settings.servers.iter().map(|s| ServerConfig {
                name: s.name.clone(),
                url: s.url.expose_secret().to_owned(),
                tenant_url: None,
            });
            let options = SeparateDbOptions {
                connections_per_server: settings
                    .connections_per_server
                    .unwrap_or(d.connections_per_server),
                acquire_timeout: settings.acquire_timeout.unwrap_or(d.acquire_timeout),
                // A request waits at most the acquire timeout in all, budget included.
                budget_timeout: settings.acquire_timeout.unwrap_or(d.budget_timeout),
                statement_timeout: settings.statement_timeout.or(d.statement_timeout),
                servers: servers.collect(),
                migrations,
                ..d
            };
            Ok(Arc::new(SeparateDbStore::connect(url, options).await?))
        }
        #[allow(unreachable_patterns)]
        other => bail!(
            "strategy {other} is not compiled into this build; rebuild with `--features {other}`"
        ),
    }
}
