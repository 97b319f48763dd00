//! Binding the scope: a tenant route's handler takes a [`Scoped`] (a transaction it commits)
//! or a [`ScopedRead`] (a read-only transaction, for the GET routes), bound by the store to the tenant the
//! [`authorize`](crate::identity::authorize) middleware checked. A handler never names a
//! tenant itself.

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use tenancy_core::{Lsn, ScopeMode, Tenant, TenantScope};

use crate::identity::Member;
use crate::problem::ApiError;
use crate::state::{AppState, app_data};

/// A transactional scope on the caller's tenant: writes, and reads that must agree with each
/// other. Nothing is kept unless the handler calls [`Scoped::commit`]; dropped, it rolls back.
pub type Scoped = BoundScope<Transaction>;

/// A read-only scope on the caller's tenant ([`ScopeMode::ReadOnly`]), for the GET routes: a
/// write through it is refused before it is sent ([`tenancy_core::Error::ReadOnly`], a 500:
/// a GET route that writes is a bug), and it is what a read replica could serve.
pub type ScopedRead = BoundScope<ReadOnly>;

/// A scope bound to the request's [`Member`]'s tenant in mode `M`; used through
/// [`Scoped`] and [`ScopedRead`]. Derefs to the [`TenantScope`] the domain functions take.
#[derive(Debug)]
pub struct BoundScope<M> {
    scope: TenantScope,
    /// The tenant the scope is bound to, as the request's member found it (with its plan).
    tenant: Tenant,
    state: web::Data<AppState>,
    mode: PhantomData<M>,
}

/// The mode of a [`Scoped`].
#[derive(Debug)]
pub enum Transaction {}

/// The mode of a [`ScopedRead`].
#[derive(Debug)]
pub enum ReadOnly {}

/// What a [`BoundScope`]'s mode marker stands for.
pub trait Mode {
    const MODE: ScopeMode;
}

impl Mode for Transaction {
    const MODE: ScopeMode = ScopeMode::Transaction;
}

impl Mode for ReadOnly {
    const MODE: ScopeMode = ScopeMode::ReadOnly;
}

impl Scoped {
    /// Commits the scope's transaction.
    pub async fn commit(self) -> tenancy_core::Result<()> {
        self.scope.commit().await
    }

    // ANCHOR: ensure_room
    /// Before adding `adding` rows to `table`: refuses (409, `/problems/quota-exceeded`)
    /// when the tenant's plan would be passed, by rows ([`Plan::ensure_room`], exact under
    /// concurrent writers: its lock is held until this scope commits) or by storage (a figure
    /// at most [`STORAGE_FRESH`](crate::state::STORAGE_FRESH) old).
    ///
    /// [`Plan::ensure_room`]: tenancy_core::Plan::ensure_room
    pub async fn ensure_room(&self, table: &str, adding: u64) -> Result<(), ApiError> {
        let plan = self.state.plans.of(&self.tenant);
        if plan.limits.storage_bytes.is_some() {
            plan.ensure_storage(&self.state.storage_of(&self.tenant).await?)?;
        }
        plan.ensure_room(&self.scope, table, adding).await?;
        Ok(())
    }
    // ANCHOR_END: ensure_room
}

impl<M> Deref for BoundScope<M> {
    type Target = TenantScope;

    fn deref(&self) -> &TenantScope {
        &self.scope
    }
}

// ANCHOR: lsn_header
/// The header that carries a write's position in the primary's WAL: a write route answers with
/// it (when the store reads from a replica), and a client that sends it back on a read is
/// served by a replica only once that replica has replayed past it (else by the primary), so
/// it reads its own writes whichever process serves it. It lives with the client because it
/// costs nothing to keep there and travels to any process; a client that drops it may read a
/// replica up to its lag bound behind.
pub const LSN_HEADER: &str = "x-tenancy-lsn";

/// The position a read must see, from [`LSN_HEADER`]; a value that is not one is a 400.
fn read_after(req: &HttpRequest) -> Result<Option<Lsn>, ApiError> {
    req.headers()
        .get(LSN_HEADER)
        // An empty value is no position, as an absent header is.
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<Lsn>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "{LSN_HEADER} must be a WAL position as a write answered it (X/Y)"
                    ))
                })
        })
        .transpose()
}

/// Middleware of the tenant routes: a successful write answers with [`LSN_HEADER`] when the
/// store reads the tenant from a replica.
pub async fn write_position(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut res = next.call(req).await?;
    if !writes || !res.status().is_success() {
        return Ok(res);
    }
    let member = res.request().extensions().get::<Member>().cloned();
    if let (Some(state), Some(member)) = (state, member) {
        match state.store.write_lsn(&member.tenant).await {
            Ok(Some(lsn)) => {
                if let Ok(value) = HeaderValue::from_str(&lsn.to_string()) {
                    res.headers_mut()
                        .insert(HeaderName::from_static(LSN_HEADER), value);
                }
            }
            Ok(None) => {}
            // The write is in; only a read that follows it may come from a replica behind it.
            Err(e) => tracing::warn!(error = %e, "no write position for the response"),
        }
    }
    Ok(res)
}
// ANCHOR_END: lsn_header

impl<M: Mode + 'static> FromRequest for BoundScope<M> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = Member::of(req).and_then(|m| {
            let after = match M::MODE {
                ScopeMode::ReadOnly => read_after(req)?,
                ScopeMode::Transaction | ScopeMode::Autocommit => None,
            };
            Ok((m, app_data::<AppState>(req)?, after))
        });
        Box::pin(async move {
            let (member, state, after) = found?;
            // actix-web extracts a handler's arguments together and drops the others when
            // one fails (a bad JSON body, say). Binding a scope sends statements; dropped
            // halfway, it would leave a connection whose state nobody knows. So it runs as a
            // task of its own, which finishes (and a scope nobody takes is then dropped,
            // rolled back and given back) whatever becomes of this request.
            let journal = state.journal.clone();
            let store = state.store.clone();
            let tenant = member.tenant.clone();
            let bind = tokio::spawn(async move {
                match M::MODE {
                    ScopeMode::ReadOnly => store.scope_read(&tenant, after).await,
                    mode => store.scope_with(&tenant, mode).await,
                }
            });
            let scope = bind
                .await
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("binding a scope: {e}")))??;
            // Every statement the handler sends is shown on the explorer page.
            Ok(BoundScope {
                scope: scope.observed(journal),
                tenant: member.tenant,
                state,
                mode: PhantomData,
            })
        })
    }
}
