//! Typed settings, loaded in layers: built-in defaults, then a TOML file (`tenancy-demo.toml`
//! in the working folder, or `--config FILE`), then environment variables
//! (`TENANCY__HTTP__PORT=9000`; `DATABASE_URL` and `TENANCY_STRATEGY` also work as is).
//! Secrets (the database URL's password, the admin token) are [`SecretString`]s: their
//! `Debug` prints a placeholder, so logging the settings never leaks them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// Everything the demo can be told.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `shared-schema`, `separate-schema`, `separate-db` or `hybrid`; `None` picks the first
    /// compiled in.
    pub strategy: Option<String>,
    /// hybrid: where a new tenant goes when its creation names no placement
    /// (`shared`, the default, `schema` or `database`).
    pub default_placement: Option<tenancy_core::PlacementKind>,
    /// A running PostgreSQL; `None` starts an embedded one in `data_dir`.
    pub database_url: Option<SecretString>,
    /// A read replica of that server (a streaming standby): the GET routes' reads go there
    /// when it may serve them, and a client that sends back a write's `X-Tenancy-Lsn` reads
    /// what it wrote. Every strategy; for separate-db, of the main server (the others' are in
    /// `servers`).
    pub replica_url: Option<SecretString>,
    /// Where the embedded server keeps its data and the demo its admin token.
    pub data_dir: PathBuf,
    /// The database the demo uses on the embedded server.
    pub database_name: String,
    pub http: HttpSettings,
    /// The admin API's bearer token; `None` uses (or creates) `data_dir/admin-token`.
    pub admin_token: Option<SecretString>,
    pub resolution: ResolutionSettings,
    /// Static tenants: declared here with a purpose of their own, created at start when
    /// missing, listed apart from the customers' (dynamic) tenants, and never deleted or
    /// moved through the API. The default declares `www`, which serves the public sign-up.
    pub tenants: Vec<StaticTenant>,
    /// The most connections the store holds (shared-schema and separate-schema; hybrid's
    /// shared tables and schemas).
    pub max_connections: u32,
    /// separate-db (and hybrid's databases): the most connections to each server's tenant
    /// databases, its budget (at least 4). As large as the tenants that are busy at once, so
    /// that each keeps a connection warm: a budget smaller than that opens a connection for
    /// most requests, and a busy tenant then slows the others down.
    pub connections_per_server: u32,
    /// Seconds a request waits for a database connection.
    pub acquire_timeout_secs: u64,
    /// Milliseconds a tenant's statement may run before the server cancels it (the request
    /// then answers 503); 0: no limit.
    pub statement_timeout_ms: u64,
    /// Extra servers for separate-db.
    pub servers: Vec<ServerSettings>,
    /// Create the sample tenant, user and token on first run.
    pub sample_data: bool,
    /// Requests per second allowed per tenant and per token.
    pub rate_limit: RateLimitSettings,
    /// The plan a tenant the catalog puts on none is on (one of `plans`).
    pub default_plan: String,
    /// What each plan allows a tenant: rows per table (`projects`, `tasks`) and storage bytes.
    pub plans: BTreeMap<String, tenancy_core::Limits>,
    /// How many of the busiest tenants `/metrics` names; the rest are summed under `other`.
    pub metrics_tenants: usize,
}

/// Request rates, checked after the token, tenant and membership. Over its token's rate a
/// request gets 429 with `Retry-After`; over its tenant's rate it waits for its turn, up to
/// `queue_ms`, and gets 429 when its turn is further away. `0` turns a rate off.
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// Requests per second to one tenant, from all its users together.
    pub per_tenant: u32,
    /// Requests per second with one token.
    pub per_token: u32,
    /// How many requests above the rate may come at once, as seconds' worth of the rate (at
    /// least one request).
    pub burst_seconds: f64,
    /// How long a request over its tenant's rate may wait for its turn (milliseconds); `0`
    /// refuses it at once.
    pub queue_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub host: String,
    /// `0` picks a free port.
    pub port: u16,
    /// The largest JSON body accepted, in bytes.
    pub body_limit: usize,
}

/// Where a request's tenant comes from, tried in `order`.
#[derive(Debug, Clone, Deserialize)]
pub struct ResolutionSettings {
    /// Any of `path` (`/t/{slug}/api/...`), `header` (`X-Tenant: {slug}`) and `subdomain`
    /// (`{slug}.{base_domain}`).
    pub order: Vec<ResolveBy>,
    pub base_domain: String,
    pub header: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResolveBy {
    Path,
    Header,
    Subdomain,
}

/// A tenant the configuration declares (see [`Settings::tenants`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTenant {
    pub slug: String,
    pub name: String,
    /// What it is for: `signup` serves `POST /t/{slug}/signup` (no token), which creates a
    /// dynamic tenant and its owner; `none` (the default) serves only the tenant API.
    #[serde(default)]
    pub purpose: Purpose,
}

/// What a static tenant is for.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// The public sign-up: creates a dynamic tenant, its owner and the owner's token.
    Signup,
    /// No route of its own: a tenant like the others that the configuration keeps.
    #[default]
    None,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Signup => "signup",
            Purpose::None => "none",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub name: String,
    pub url: SecretString,
    /// A read replica of this server (separate-db and hybrid's database placement).
    #[serde(default)]
    pub replica_url: Option<SecretString>,
}

// ANCHOR: defaults
const DEFAULTS: &str = r#"
data_dir = ".tenancy-demo"
database_name = "tenancy_demo"
max_connections = 10
connections_per_server = 64
acquire_timeout_secs = 5
statement_timeout_ms = 5000
servers = []
sample_data = true
metrics_tenants = 10

# ANCHOR: plans
# What a tenant may add, by its plan: rows per tenant table and bytes over all its tables.
# A sign-up's tenant is on the default plan; PUT /admin/tenants/{slug}/plan moves it.
default_plan = "free"

[plans.free]
rows = { projects = 100, tasks = 1000 }
storage_bytes = 52428800      # 50 MiB

[plans.pro]
rows = { projects = 100000, tasks = 10000000 }
storage_bytes = 21474836480   # 20 GiB
# ANCHOR_END: plans

# ANCHOR: static_tenants
[[tenants]]
slug = "www"
name = "Public site"
purpose = "signup"
# ANCHOR_END: static_tenants

[http]
host = "127.0.0.1"
port = 8080
body_limit = 65536

[rate_limit]
per_tenant = 200
per_token = 0
burst_seconds = 0.1
queue_ms = 1000

[resolution]
order = ["path", "header", "subdomain"]
base_domain = "localhost"
header = "X-Tenant"
"#;
// ANCHOR_END: defaults

impl Settings {
    /// The configured plans, checked: the default must be one of them.
    pub fn plans(&self) -> anyhow::Result<tenancy_core::Plans> {
        Ok(tenancy_core::Plans::new(
            &self.default_plan,
            self.plans.clone(),
        )?)
    }

    /// Loads the layers. `file` is required when given; otherwise `tenancy-demo.toml` is read
    /// when it exists.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        use config::{Config, Environment, File, FileFormat};
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        builder = match file {
            Some(path) => builder.add_source(File::from(path).required(true)),
            None => builder.add_source(File::with_name("tenancy-demo.toml").required(false)),
        };
        builder = builder.add_source(
            Environment::with_prefix("TENANCY")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("resolution.order")
                .try_parsing(true),
        );
        if let Ok(url) = std::env::var("DATABASE_URL") {
            builder = builder.set_override("database_url", url)?;
        }
        if let Ok(strategy) = std::env::var("TENANCY_STRATEGY") {
            builder = builder.set_override("strategy", strategy)?;
        }
        Ok(builder.build()?.try_deserialize()?)
    }
}
