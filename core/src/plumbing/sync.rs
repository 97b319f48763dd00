//! The one policy for a lock that a panic poisoned: take the data as the panic left it, and
//! say so in the log.
//!
//! Every mutex in the workspace guards plain data that each critical section changes with one
//! assignment, insertion or removal (caches of tenants and placements, idle connections, the
//! statements of a transaction, a server's health): a panic part-way through leaves it whole.
//! Refusing every later request instead (an error for each caller, for the life of the
//! process) would turn one panic into an outage; recovering costs nothing but the log line,
//! which names the lock so the panic before it can be found.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`; when a panic poisoned it, logs that at error level (naming `what`) and
/// takes the data anyway. See the module's documentation for why.
pub fn lock<'a, T>(mutex: &'a Mutex<T>, what: &'static str) -> MutexGuard<'a, T> {
    mutex.lock().unwrap_or_else(|poisoned| {
        tracing::error!(
            lock = what,
            "a panic poisoned this lock while it was held; its data is used as the panic left it"
        );
        mutex.clear_poison();
        poisoned.into_inner()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_gives_its_data_and_is_healed() {
        let m = std::sync::Arc::new(Mutex::new(vec![1]));
        let held = m.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.lock();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        lock(&m, "test").push(2);
        assert_eq!(*lock(&m, "test"), vec![1, 2]);
        assert!(
            !m.is_poisoned(),
            "the lock is healed after the first recovery"
        );
    }
}
