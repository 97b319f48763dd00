//! Which strategies this build contains, and how a store of each is opened: the one place
//! that does, for the demo and the benches alike.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use tenancy_core::migration::TenantMigrations;
use tenancy_core::plumbing::notices::Notices;
use tenancy_core::{
    Job, PlacementKind, PoolOptions, Progress, ReplicaOptions, Strategy, Tenant, TenantId,
    TenantStore,
};

use crate::settings::{ServerSettings, Settings};

/// The strategies compiled into this build, in order of preference.
pub const COMPILED: &[Strategy] = &[
    #[cfg(feature = "shared-schema")]
    Strategy::SharedSchema,
    #[cfg(feature = "separate-schema")]
    Strategy::SeparateSchema,
    #[cfg(feature = "separate-db")]
    Strategy::SeparateDb,
    #[cfg(feature = "hybrid")]
    Strategy::Hybrid,
];

/// The strategy `name` names, or the first compiled in when `None`; a clear error when it
/// is unknown or not compiled in.
pub fn pick(name: Option<&str>) -> Result<Strategy> {
    let Some(name) = name else {
        return match COMPILED.first() {
            Some(s) => Ok(*s),
            None => bail!(
                "no strategy is compiled in: build with --features shared-schema, separate-schema or separate-db"
            ),
        };
    };
    let wanted: Strategy = name.parse()?;
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
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// shared-schema and separate-schema: the most connections the store holds.
    pub max_connections: Option<u32>,
    /// separate-db: the most connections the store holds to each server.
    pub connections_per_server: Option<u32>,
    /// How long a request waits for a connection (each store's `pool`, through [`Self::pool`]).
    pub acquire_timeout: Option<Duration>,
    /// How long a tenant statement may run (each store's `pool`, through [`Self::pool`]).
    pub statement_timeout: Option<Duration>,
    /// separate-db: more servers to place tenants on.
    pub servers: Vec<ServerSettings>,
    /// The tenant migrations (default: the example domain's, which the demo serves).
    pub migrations: TenantMigrations,
    /// hybrid: where a new tenant goes when its creation does not say.
    pub default_placement: Option<PlacementKind>,
    /// A read replica of the main server (shared-schema, separate-schema, and hybrid's shared
    /// and schema placements).
    pub replica: Option<ReplicaOptions>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            max_connections: None,
            connections_per_server: None,
            acquire_timeout: None,
            statement_timeout: None,
            servers: Vec::new(),
            migrations: tenancy_example::migrations(),
            default_placement: None,
            replica: None,
        }
    }
}

impl From<&Settings> for StoreSettings {
    /// The demo's settings: `max_connections` per store, and `connections_per_server` per
    /// server for separate-db (at least 4, which leaves room for tenant pools beside the
    /// control pool).
    fn from(settings: &Settings) -> Self {
        StoreSettings {
            max_connections: Some(settings.max_connections),
            connections_per_server: Some(settings.connections_per_server.max(4)),
            acquire_timeout: Some(Duration::from_secs(settings.acquire_timeout_secs)),
            statement_timeout: Some(Duration::from_millis(settings.statement_timeout_ms))
                .filter(|t| !t.is_zero()),
            servers: settings.servers.clone(),
            migrations: tenancy_example::migrations(),
            default_placement: settings.default_placement,
            replica: settings.replica_url.as_ref().map(|url| {
                use secrecy::ExposeSecret;
                ReplicaOptions::new(url.expose_secret())
            }),
        }
    }
}

impl StoreSettings {
    /// A store's pool options: `default` (the store's own) with the timeouts these settings
    /// give. The one place the demo's pool settings reach a store's options.
    pub fn pool(&self, default: &PoolOptions) -> PoolOptions {
        PoolOptions {
            acquire_timeout: self.acquire_timeout.unwrap_or(default.acquire_timeout),
            statement_timeout: self.statement_timeout.or(default.statement_timeout),
            ..default.clone()
        }
    }
}

/// What moves a tenant between placements: the hybrid store, when it is the strategy.
#[async_trait::async_trait]
pub trait Mover: Send + Sync + std::fmt::Debug {
    /// Records a move and returns its job (see `HybridStore::start_move`).
    async fn start(
        &self,
        id: TenantId,
        to: PlacementKind,
        server: Option<String>,
    ) -> tenancy_core::Result<Job>;
    /// Drives a recorded move to its end (see `HybridStore::run_move`).
    async fn run(
        &self,
        id: TenantId,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> tenancy_core::Result<Tenant>;
    /// Rolls back or finishes the moves a stopped process left; returns how many.
    async fn resume(&self) -> tenancy_core::Result<usize>;
}

/// A store, and the mover when the store can move tenants.
#[derive(Debug, Clone)]
pub struct Opened {
    pub store: Arc<dyn TenantStore>,
    pub mover: Option<Arc<dyn Mover>>,
}

/// Opens the store of `strategy` on `url` (which installs the catalog when missing).
pub async fn open(
    strategy: Strategy,
    url: &str,
    settings: &StoreSettings,
) -> Result<Arc<dyn TenantStore>> {
    Ok(open_with_mover(strategy, url, settings, None).await?.store)
}

#[cfg(feature = "shared-schema")]
fn shared_options(settings: &StoreSettings) -> tenancy_shared_schema::SharedSchemaOptions {
    let d = tenancy_shared_schema::SharedSchemaOptions::default();
    tenancy_shared_schema::SharedSchemaOptions {
        max_connections: settings.max_connections.unwrap_or(d.max_connections),
        pool: settings.pool(&d.pool),
        migrations: settings.migrations.clone(),
        replica: settings.replica.clone(),
        ..d
    }
}

#[cfg(feature = "separate-schema")]
fn schema_options(settings: &StoreSettings) -> tenancy_separate_schema::SeparateSchemaOptions {
    let d = tenancy_separate_schema::SeparateSchemaOptions::default();
    tenancy_separate_schema::SeparateSchemaOptions {
        max_connections: settings.max_connections.unwrap_or(d.max_connections),
        pool: settings.pool(&d.pool),
        migrations: settings.migrations.clone(),
        replica: settings.replica.clone(),
        ..d
    }
}

#[cfg(feature = "separate-db")]
fn database_options(settings: &StoreSettings) -> tenancy_separate_db::SeparateDbOptions {
    use secrecy::ExposeSecret;
    use tenancy_separate_db::{SeparateDbOptions, ServerConfig};
    let d = SeparateDbOptions::default();
    let servers = settings.servers.iter().map(|s| ServerConfig {
        name: s.name.clone(),
        url: s.url.expose_secret().to_owned(),
        tenant_url: None,
        replica: s
            .replica_url
            .as_ref()
            .map(|u| tenancy_core::ReplicaOptions::new(u.expose_secret())),
    });
    SeparateDbOptions {
        connections_per_server: settings
            .connections_per_server
            .unwrap_or(d.connections_per_server),
        pool: settings.pool(&d.pool),
        // A request waits at most the acquire timeout in all, budget included.
        budget_timeout: settings.acquire_timeout.unwrap_or(d.budget_timeout),
        servers: servers.collect(),
        replica: settings.replica.clone(),
        migrations: settings.migrations.clone(),
        ..d
    }
}

#[cfg(feature = "hybrid")]
#[async_trait::async_trait]
impl Mover for tenancy_hybrid::HybridStore {
    async fn start(
        &self,
        id: TenantId,
        to: PlacementKind,
        server: Option<String>,
    ) -> tenancy_core::Result<Job> {
        self.start_move(id, to, server).await
    }

    async fn run(
        &self,
        id: TenantId,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> tenancy_core::Result<Tenant> {
        self.run_move(id, progress).await
    }

    async fn resume(&self) -> tenancy_core::Result<usize> {
        Ok(self.resume_moves().await?.len())
    }
}

/// [`open`], with the mover when the strategy is hybrid, whose caches hear the catalog's
/// notices through `notices` (the process's one `LISTEN` loop, on the catalog's channel), or,
/// given none, through a loop of its own.
#[cfg_attr(
    not(any(
        feature = "shared-schema",
        feature = "separate-schema",
        feature = "separate-db"
    )),
    allow(unused_variables)
)]
pub async fn open_with_mover(
    strategy: Strategy,
    url: &str,
    settings: &StoreSettings,
    notices: Option<&Notices>,
) -> Result<Opened> {
    let alone = |store: Arc<dyn TenantStore>| Opened { store, mover: None };
    match strategy {
        #[cfg(feature = "shared-schema")]
        Strategy::SharedSchema => Ok(alone(Arc::new(
            tenancy_shared_schema::SharedSchemaStore::connect(url, shared_options(settings))
                .await?,
        ))),
        #[cfg(feature = "separate-schema")]
        Strategy::SeparateSchema => Ok(alone(Arc::new(
            tenancy_separate_schema::SeparateSchemaStore::connect(url, schema_options(settings))
                .await?,
        ))),
        #[cfg(feature = "separate-db")]
        Strategy::SeparateDb => Ok(alone(Arc::new(
            tenancy_separate_db::SeparateDbStore::connect(url, database_options(settings)).await?,
        ))),
        #[cfg(feature = "hybrid")]
        Strategy::Hybrid => {
            use tenancy_hybrid::{DefaultPlacement, HybridOptions, HybridStore};
            let options = HybridOptions {
                shared: shared_options(settings),
                schema: schema_options(settings),
                database: database_options(settings),
                default_placement: DefaultPlacement::Fixed(
                    settings.default_placement.unwrap_or(PlacementKind::Shared),
                ),
                ..HybridOptions::default()
            };
            let store = Arc::new(match notices {
                Some(notices) => {
                    HybridStore::connect_with_notices(url, options, notices.clone()).await?
                }
                None => HybridStore::connect(url, options).await?,
            });
            Ok(Opened {
                store: store.clone(),
                mover: Some(store),
            })
        }
        #[allow(unreachable_patterns)]
        other => bail!(
            "strategy {other} is not compiled into this build; rebuild with `--features {other}`"
        ),
    }
}
