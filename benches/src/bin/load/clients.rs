//! The clients' side of a run: closed-loop clients as fast as they go, and the tally of what
//! every request got (latencies, errors and their kinds, 429s, leaks).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::app::App;

/// Latencies (µs) and outcomes of a run.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) latencies: std::sync::Mutex<Vec<u32>>,
    pub(crate) ok: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) leaks: AtomicU64,
    pub(crate) limited: AtomicU64,
    /// What the errors were, each in full (a status, or a transport error with every cause
    /// under it), counted.
    pub(crate) kinds: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Tally {
    pub(crate) fn add(&self, took: Duration, outcome: &Result<bool>) {
        match outcome {
            Ok(leak) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                if *leak {
                    self.leaks.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) if e.to_string().starts_with("429") => {
                self.limited.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                // `{:#}`: the error and each cause under it (for a transport error, what the
                // connection did), which the first line alone does not say.
                let kind = format!("{e:#}");
                *self
                    .kinds
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(kind)
                    .or_default() += 1;
            }
        }
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(us);
    }

    /// The `q` quantile of the latencies, in ms.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        let mut l = self
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if l.is_empty() {
            return 0.0;
        }
        l.sort_unstable();
        let i = ((l.len() - 1) as f64 * q).round() as usize;
        f64::from(l[i]) / 1000.0
    }

    /// The errors' kinds of `tallies` together, counted.
    pub(crate) fn kinds_of(tallies: &[&Tally]) -> std::collections::BTreeMap<String, u64> {
        let mut all = std::collections::BTreeMap::new();
        for tally in tallies {
            for (kind, n) in tally.kinds.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                *all.entry(kind.clone()).or_default() += n;
            }
        }
        all
    }

    pub(crate) fn count(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
            + self.errors.load(Ordering::Relaxed)
            + self.limited.load(Ordering::Relaxed)
    }
}

/// `clients` closed-loop clients over `tenants` for `run`; the mix is one write in five.
pub(crate) async fn closed_loop(
    app: &Arc<App>,
    tenants: &Arc<Vec<(String, String)>>,
    clients: usize,
    run: Duration,
    tally: &Arc<Tally>,
) {
    let end = Instant::now() + run;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (app, tenants, tally) = (app.clone(), tenants.clone(), tally.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < end {
                    let (slug, token) = &tenants[(c + n as usize * 7) % tenants.len()];
                    let start = Instant::now();
                    let outcome = app
                        .request(slug, token, n.is_multiple_of(5), 1_000 + n)
                        .await;
                    tally.add(start.elapsed(), &outcome);
                    n += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}
