//! Builds the app: the store, the catalog pool and the demo's tables (the [`Backend`]), then
//! the identity caches, shared state and routes (the [`Application`]); and the first-run
//! sample data.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, Service};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::{Context, Result};
use futures::FutureExt;
use secrecy::ExposeSecret;
use tenancy_core::plumbing::notices::Notices;
use tenancy_core::plumbing::{PoolSettings, catalog};
use tenancy_core::sea_orm::{DatabaseConnection, TransactionTrait};
use tenancy_core::{NewTenant, Slug, Strategy, TenantStore};
use tenancy_example::projects::{self, NewProject};
use tenancy_example::tasks::{self, NewTask};
use tracing::Instrument;

use crate::accounts::{self, NewUser, Role};
use crate::identity::{Identity, authorize};
use crate::metrics::Metrics;
use crate::openapi;
use crate::problem::{ApiError, json_error};
use crate::routes::{admin, ops, public, tenant};
use crate::settings::Settings;
use crate::state::AppState;
use crate::strategy::StoreSettings;

/// What the first run created, so it can be shown (once).
#[derive(Clone)]
pub struct FirstRun {
    pub tenant: String,
    pub token: String,
}

impl std::fmt::Debug for FirstRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstRun")
            .field("tenant", &self.tenant)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// The store and the catalog pool, opened once per process.
#[derive(Clone)]
pub struct Backend {
    pub store: Arc<dyn TenantStore>,
    pub control: DatabaseConnection,
    /// What moves tenants between placements (hybrid only).
    pub mover: Option<Arc<dyn crate::strategy::Mover>>,
    /// The process's one `LISTEN` loop (the catalog's and the accounts' channels): the
    /// hybrid store's caches and the identity caches subscribe to it.
    pub notices: Notices,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("strategy", &self.store.strategy())
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// Opens the store of `strategy` (installing its catalog) and a small catalog pool, then
    /// brings the demo's own tables (users, memberships, tokens) up to date.
    pub async fn open(strategy: Strategy, url: &str, settings: &Settings) -> Result<Self> {
        let notices = Notices::start(
            &tenancy_core::plumbing::loopback_without_tls(url),
            &[catalog::CATALOG_CHANNEL, crate::identity::ACCOUNTS_CHANNEL],
        );
        let opened = crate::strategy::open_with_mover(
            strategy,
            url,
            &StoreSettings::from(settings),
            Some(&notices),
        )
        .await?;
        let pool = PoolSettings {
            max_connections: 4,
            acquire_timeout: std::time::Duration::from_secs(settings.acquire_timeout_secs),
            ..PoolSettings::default()
        };
        let control = tenancy_core::plumbing::connect_pool(url, &pool).await?;
        let backend = Backend {
            store: opened.store,
            control,
            mover: opened.mover,
            notices,
        };
        backend.refuse_other_strategies(strategy).await?;
        accounts::migration::run(&backend.control)
            .await
            .context("migrating the demo's tables")?;
        Ok(backend)
    }

    /// A database whose tenants were placed by another strategy cannot be served by this one
    /// (their rows are elsewhere): say so at start rather than fail request by request.
    async fn refuse_other_strategies(&self, strategy: Strategy) -> Result<()> {
        // A hybrid store serves every placement.
        let Some(expected) = strategy.placement_kind() else {
            return Ok(());
        };
        for kind in catalog::placement_kinds(&self.control).await? {
            if kind != expected.as_str() {
                anyhow::bail!(
                    "this database holds tenants placed by another strategy ({kind:?}, not \
                     {:?} as {strategy} places them). Start with --fresh (embedded \
                     database) or point DATABASE_URL at another database",
                    expected.as_str()
                );
            }
        }
        Ok(())
    }

    /// Creates the configuration's static tenants that are missing (see [`crate::statics`]).
    pub async fn ensure_static_tenants(&self, settings: &Settings) -> Result<()> {
        for t in &settings.tenants {
            let slug = Slug::parse(&t.slug)
                .with_context(|| format!("static tenant {:?} in the configuration", t.slug))?;
            self.store
                .create_tenant(NewTenant::new(slug, t.name.clone()))
                .await?;
        }
        Ok(())
    }

    /// On a database with no users: a sample tenant `acme` with a project and a task, a user
    /// who owns it, and a token for that user.
    pub async fn first_run(&self) -> Result<Option<FirstRun>> {
        if accounts::any_user(&self.control).await? {
            return Ok(None);
        }
        let acme = self
            .store
            .create_tenant(NewTenant::new(Slug::parse("acme")?, "Acme Inc."))
            .await?;
        let scope = self.store.scope(&acme).await?;
        if projects::list(&scope, Default::default())
            .await?
            .items
            .is_empty()
        {
            let p = projects::create(
                &scope,
                NewProject {
                    name: "Welcome".into(),
                    description: "Created on the first run".into(),
                },
            )
            .await?;
            tasks::create(&scope, p.id, NewTask::titled("Try the API")).await?;
        }
        scope.commit().await?;
        // The user, the membership and the token commit together: a run interrupted before
        // the commit leaves no user behind, so the next run does the first run again.
        let txn = self.control.begin().await?;
        let user = accounts::create_user(
            &txn,
            NewUser {
                email: "demo@example.com".into(),
                name: "Demo User".into(),
            },
        )
        .await?;
        accounts::set_membership(&txn, acme.id, user.id, Role::Owner).await?;
        let token = accounts::create_token(&txn, user.id, None).await?;
        txn.commit().await?;
        Ok(Some(FirstRun {
            tenant: acme.slug.to_string(),
            token: token.token,
        }))
    }
}

/// The admin token: from the settings, else from `data_dir/admin-token`, created on first use.
/// Returns the token and whether it was just created (and so must be shown).
pub fn admin_token(settings: &Settings) -> Result<(String, bool)> {
    if let Some(t) = &settings.admin_token {
        return Ok((t.expose_secret().to_owned(), false));
    }
    let path = settings.data_dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok((t.trim().to_owned(), false));
    }
    std::fs::create_dir_all(&settings.data_dir)?;
    let token = accounts::new_token();
    tenancy_core::embedded::write_private(&path, &token)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((token, true))
}

/// Waits for Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// A running HTTP server and the port it listens on.
pub struct Application {
    port: u16,
    host: String,
    server: Server,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish()
    }
}

impl Application {
    /// Binds the listener (port 0 picks one) and builds the server; it runs when awaited.
    pub fn build(settings: &Settings, backend: &Backend, admin_token: &str) -> Result<Self> {
        let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))
            .with_context(|| format!("binding {}:{}", settings.http.host, settings.http.port))?;
        let port = listener.local_addr()?.port();
        let metrics = Metrics::new()?;
        let identity = Identity::new(
            backend.store.clone(),
            backend.control.clone(),
            settings.resolution.clone(),
            admin_token,
            metrics.tenant_cache.clone(),
            crate::identity::Limits::new(&settings.rate_limit),
        );
        // Every process forgets a cached token, tenant or role when the database announces
        // its change.
        tokio::spawn(crate::identity::listen(
            identity.clone(),
            backend.notices.subscribe(),
        ));
        let mut state = AppState::new(backend.store.clone(), backend.control.clone(), metrics);
        state.mover = backend.mover.clone();
        state.statics = Arc::new(crate::statics::StaticTenants::new(&settings.tenants));
        state.plans = Arc::new(settings.plans()?);
        state.metrics_tenants = settings.metrics_tenants;
        state.servers = Arc::new(
            std::iter::once("main".to_owned())
                .chain(settings.servers.iter().map(|s| s.name.clone()))
                .collect(),
        );
        let limit = settings.http.body_limit;
        let server = HttpServer::new(move || {
            let state = state.clone();
            let metrics = state.metrics.clone();
            let strategy = state.strategy.as_str();
            App::new()
                .app_data(web::Data::new(state))
                .app_data(web::Data::new(identity.clone()))
                .app_data(
                    web::JsonConfig::default()
                        .limit(limit)
                        .error_handler(move |e, _| json_error(e, limit).into()),
                )
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::Unprocessable(format!("invalid query: {e}")).into()
                }))
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|_, _| ApiError::NotFound("not found".into()).into()),
                )
                .wrap_fn(move |req, srv| {
                    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
                    let span = tracing::info_span!(
                        "request",
                        method = %req.method(),
                        route = %route,
                        strategy,
                        tenant = tracing::field::Empty,
                    );
                    let metrics = metrics.clone();
                    srv.call(req).instrument(span).map(move |res| {
                        if let Ok(res) = &res {
                            metrics
                                .requests
                                .with_label_values(&[
                                    route.as_str(),
                                    res.status().as_str(),
                                    strategy,
                                ])
                                .inc();
                        }
                        res
                    })
                })
                // ANCHOR: routes
                .service(
                    web::scope("/t/{tenant}/api")
                        .wrap(from_fn(crate::scoped::write_position))
                        .wrap(from_fn(authorize))
                        .configure(tenant::routes),
                )
                .service(
                    web::scope("/api")
                        .wrap(from_fn(crate::scoped::write_position))
                        .wrap(from_fn(authorize))
                        .configure(tenant::routes),
                )
                .service(web::scope("/admin").configure(admin::routes))
                // ANCHOR_END: routes
                .configure(public::routes)
                .configure(ops::routes)
                .configure(openapi::routes)
                .default_service(web::to(|| async {
                    Err::<actix_web::HttpResponse, _>(ApiError::NotFound("no such route".into()))
                }))
        })
        .listen(listener)?
        .shutdown_timeout(30)
        // Our own signal handling: actix treats Ctrl-C as a forced stop, which would drop
        // in-flight requests.
        .disable_signals()
        .run();
        let handle = server.handle();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            handle.stop(true).await;
        });
        Ok(Application {
            port,
            host: settings.http.host.clone(),
            server,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The base URL, for messages.
    pub fn base_url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// Serves until SIGINT or SIGTERM; in-flight requests finish first.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
