//! The LISTEN loop: the database's notices of changed tenants, tokens and memberships, turned
//! into forgotten cache entries in this process.

use std::time::Duration;

use tenancy_core::plumbing::catalog;

use super::ACCOUNTS_CHANNEL;
use super::cache::Identity;

// ANCHOR: listen
/// Keeps `identity`'s caches in step with the database, for as long as the app runs: listens
/// on the catalog's and the accounts' channels, where every change to a tenant, a token or a
/// membership is announced when it commits, whichever process made it; each notice makes
/// this process forget what it cached. While the listening connection is down notices are
/// lost, so the caches are cleared whenever it (re)connects.
pub async fn listen(identity: Identity, pool: tenancy_core::sea_orm::sqlx::PgPool) {
    use tenancy_core::sea_orm::sqlx::postgres::PgListener;
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen_all([catalog::CATALOG_CHANNEL, ACCOUNTS_CHANNEL])
                .await?;
            Ok::<_, tenancy_core::sea_orm::sqlx::Error>(l)
        };
        match listener.await {
            Ok(mut l) => {
                identity.forget_everything();
                loop {
                    match l.try_recv().await {
                        Ok(Some(notice)) => identity.hear(notice.channel(), notice.payload()).await,
                        // The connection was lost: the next call connects again, and whatever
                        // was announced in between is unknown.
                        Ok(None) => identity.forget_everything(),
                        Err(e) => {
                            tracing::warn!(error = %e, "listening for cache notices");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for cache notices"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
// ANCHOR_END: listen
