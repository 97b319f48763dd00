//! The identity caches' subscription to the process's one `LISTEN` loop
//! ([`tenancy_core::plumbing::notices`]): notices of changed tenants, tokens and memberships,
//! turned into forgotten cache entries in this process.

use tenancy_core::plumbing::notices::{Notice, Subscriber};

use super::cache::Identity;

// ANCHOR: listen
/// Keeps `identity`'s caches in step with the database, for as long as the app runs: hears
/// the catalog's and the accounts' channels, where every change to a tenant, a token or a
/// membership is announced when it commits, whichever process made it; each notice makes
/// this process forget what it cached. While the listening connection is down notices are
/// lost, so the caches are cleared when it drops and when it is back.
pub async fn listen(identity: Identity, mut notices: Subscriber) {
    while let Some(notice) = notices.next().await {
        match notice {
            Notice::Heard { channel, payload } => identity.hear(&channel, &payload).await,
            Notice::Lost => identity.forget_everything(),
        }
    }
}
// ANCHOR_END: listen
