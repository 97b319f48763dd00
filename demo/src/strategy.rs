//! Which strategies this build contains, and how each store is opened.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use tenancy_core::{Strategy, TenantStore};

use crate::settings::Settings;

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

/// Opens the store of `strategy` on `url`.
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
    settings: &Settings,
) -> Result<Arc<dyn TenantStore>> {
    let acquire = Duration::from_secs(settings.acquire_timeout_secs);
    match strategy {
        #[cfg(feature = "shared-schema")]
        Strategy::SharedSchema => {
            use tenancy_shared_schema::{SharedSchemaOptions, SharedSchemaStore};
            let options = SharedSchemaOptions {
                max_connections: settings.max_connections,
                acquire_timeout: acquire,
                ..SharedSchemaOptions::default()
            };
            Ok(Arc::new(SharedSchemaStore::connect(url, options).await?))
        }
        #[cfg(feature = "separate-schema")]
        Strategy::SeparateSchema => {
            use tenancy_separate_schema::{SeparateSchemaOptions, SeparateSchemaStore};
            let options = SeparateSchemaOptions {
                max_connections: settings.max_connections,
                acquire_timeout: acquire,
                ..SeparateSchemaOptions::default()
            };
            Ok(Arc::new(SeparateSchemaStore::connect(url, options).await?))
        }
        #[cfg(feature = "separate-db")]
        Strategy::SeparateDb => {
            use secrecy::ExposeSecret;
            use tenancy_separate_db::{SeparateDbOptions, SeparateDbStore, ServerConfig};
            let options = SeparateDbOptions {
                connections_per_server: settings.max_connections.max(4),
                acquire_timeout: acquire,
                servers: settings
                    .servers
                    .iter()
                    .map(|s| ServerConfig {
                        name: s.name.clone(),
                        url: s.url.expose_secret().to_owned(),
                    })
                    .collect(),
                ..SeparateDbOptions::default()
            };
            Ok(Arc::new(SeparateDbStore::connect(url, options).await?))
        }
        #[allow(unreachable_patterns)]
        other => bail!(
            "strategy {other} is not compiled into this build; rebuild with `--features {other}`"
        ),
    }
}
