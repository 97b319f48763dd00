//! Read replicas: which reads a streaming replica may serve, decided per read.
//!
//! A store given a replica for a server ([`ReplicaOptions`]) sends a tenant's read-only scopes
//! there and everything else to the primary. [`ReplicaRoute::serves`] decides per read, from
//! what it knows of the replica:
//!
//! - **Down**: a replica that failed (refused a connection, timed out, is not in recovery) is
//!   left alone for [`ReplicaOptions::retry_after`]; reads go to the primary meanwhile, then
//!   the replica is tried again.
//! - **Lagging**: the primary's WAL position is sampled (at most every 100 ms, by the reads
//!   themselves) and the replica's replay position beside it; when the replica is behind, its
//!   lag is how long ago the samples first saw the primary past what it replayed, or how old
//!   its last replayed transaction is, whichever is longer. Past [`ReplicaOptions::max_lag`],
//!   reads go to the primary.
//! - **Read-your-writes**: a read that must see a write carries the write's position ([`Lsn`],
//!   from [`crate::TenantStore::write_lsn`] after the commit) and waits, at most
//!   [`ReplicaOptions::wait`], for the replica to replay past it; then it goes to the primary.
//!
//! Where the position lives is the application's choice; it is a number a client can carry
//! (the demo sends it in a response header and takes it back on the next read), so a read
//! served by another process sees the write too, and nothing is written per request to keep
//! it.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sea_orm::sqlx::{self, PgPool, postgres::PgPoolOptions};

use crate::error::{Error, Result};
use crate::plumbing::sync::lock;
use crate::scope::TenantScope;
use crate::tenant::Tenant;

/// A position in a server's write-ahead log (`pg_lsn`), written `X/Y` in hexadecimal as
/// PostgreSQL writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "lsn",
                format!("{s:?} is not a WAL position (X/Y, hexadecimal)"),
            )
        };
        let (high, low) = s.split_once('/').ok_or_else(bad)?;
        if high.is_empty() || low.is_empty() || high.len() > 8 || low.len() > 8 {
            return Err(bad());
        }
        let high = u64::from_str_radix(high, 16).map_err(|_| bad())?;
        let low = u64::from_str_radix(low, 16).map_err(|_| bad())?;
        Ok(Lsn((high << 32) | low))
    }
}

/// A read replica of one server, for a store's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaOptions {
    /// The replica's URL (a streaming standby of the server, with the same databases).
    pub url: String,
    /// Reads go to the primary while the replica is further behind than this (default 1 s).
    pub max_lag: Duration,
    /// How long a read that must see a write waits for the replica to replay past it before
    /// it goes to the primary (default 100 ms).
    pub wait: Duration,
    /// How long a replica that failed is left alone before it is tried again (default 1 s).
    pub retry_after: Duration,
}

impl ReplicaOptions {
    /// A replica at `url`, with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        ReplicaOptions {
            url: url.into(),
            max_lag: Duration::from_secs(1),
            wait: Duration::from_millis(100),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// How often the reads themselves sample the primary's and the replica's positions.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// How often a read that waits for its write looks at the replica again.
const POLL_EVERY: Duration = Duration::from_millis(5);

#[derive(Debug, Default)]
struct Known {
    down_until: Option<Instant>,
    probed_at: Option<Instant>,
    /// The replica's replay position when last probed.
    replayed: Lsn,
    /// The primary's positions as sampled, oldest first.
    samples: VecDeque<(Instant, Lsn)>,
    /// When last probed: how long before that the replica replayed its last transaction
    /// (`pg_last_xact_replay_timestamp()`, by the replica's clock).
    replay_age: Duration,
}

impl Known {
    /// How far behind the replica is: nothing when it has replayed what the primary had
    /// written at the last sample; else the longer of how long ago the samples first saw the
    /// primary past it and how old its last replayed transaction was when probed (the samples
    /// are taken by reads, so after a quiet spell the first one cannot tell how long the
    /// primary has been ahead).
    fn lag(&self, now: Instant) -> Duration {
        let Some((_, latest)) = self.samples.back() else {
            return Duration::ZERO;
        };
        if *latest <= self.replayed {
            return Duration::ZERO;
        }
        let sampled = self
            .samples
            .iter()
            .find(|(_, lsn)| *lsn > self.replayed)
            .map_or(Duration::ZERO, |(at, _)| now.saturating_duration_since(*at));
        sampled.max(self.replay_age)
    }
}

/// What a store knows of one replica, and the probes that keep it current.
#[derive(Debug)]
pub struct ReplicaRoute {
    options: ReplicaOptions,
    /// A connection to the primary, for its WAL position.
    primary: PgPool,
    /// One connection to the replica, for its replay position.
    replica: PgPool,
    known: Mutex<Known>,
    probing: tokio::sync::Mutex<()>,
}

impl ReplicaRoute {
    /// The route to the replica `options` names, whose primary `primary` reaches. Connects to
    /// neither yet: a replica down when the store starts is found out by the first read.
    pub fn new(primary: PgPool, options: ReplicaOptions) -> Result<Self> {
        let replica = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.retry_after.min(Duration::from_secs(1)))
            .connect_lazy(&super::loopback_without_tls(&options.url))
            .map_err(Error::from)?;
        Ok(ReplicaRoute {
            options,
            primary,
            replica,
            known: Mutex::default(),
            probing: tokio::sync::Mutex::new(()),
        })
    }

    /// The replica's options.
    pub fn options(&self) -> &ReplicaOptions {
        &self.options
    }

    /// Marks the replica down after `error` (a failed connection or statement there): reads
    /// go to the primary for [`ReplicaOptions::retry_after`].
    pub fn failed(&self, error: &Error) {
        tracing::warn!(replica = %redacted(&self.options.url), %error,
            "the read replica failed: reads go to the primary for a while");
        lock(&self.known, "a replica's state").down_until =
            Some(Instant::now() + self.options.retry_after);
    }

    /// The primary's WAL position now: after a commit, at or past the commit's end.
    pub async fn write_lsn(&self) -> Result<Lsn> {
        position(&self.primary, "SELECT pg_current_wal_lsn()::text").await
    }

    /// Whether a read may go to the replica now: it is up, within `max_lag`, and (for a read
    /// that must see the write at `after`) replayed past `after` within `wait`.
    pub async fn serves(&self, after: Option<Lsn>) -> bool {
        let now = Instant::now();
        let (down, stale) = {
            let known = lock(&self.known, "a replica's state");
            (
                known.down_until.is_some_and(|until| until > now),
                known.probed_at.is_none_or(|at| now - at >= PROBE_EVERY),
            )
        };
        if down {
            return false;
        }
        if stale && let Err(e) = self.probe().await {
            self.failed(&e);
            return false;
        }
        let (lag, replayed) = {
            let known = lock(&self.known, "a replica's state");
            (known.lag(Instant::now()), known.replayed)
        };
        if lag > self.options.max_lag {
            return false;
        }
        match after {
            Some(wanted) if wanted > replayed => self.wait_for(wanted).await,
            _ => true,
        }
    }

    /// A read-only scope on the replica, when [`ReplicaRoute::serves`] says it may serve the
    /// read at `after`: `bind` binds it there. `None` sends the read to the primary: the
    /// replica may not serve it, or binding there failed (a failure to reach the replica
    /// marks it down; another, such as a database the replica does not have yet, only sends
    /// this read away).
    ///
    /// A tenant placed less than twice `max_lag` (and a second) ago, created or moved, is read
    /// from the primary: the replica may not have replayed its placement yet (a schema or a
    /// database it does not have, rows a move copied). Within its lag bound it has replayed
    /// everything older.
    pub async fn read<F, Fut>(
        &self,
        tenant: &Tenant,
        after: Option<Lsn>,
        bind: F,
    ) -> Option<TenantScope>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<TenantScope>>,
    {
        let settled = self.options.max_lag * 2 + Duration::from_secs(1);
        let age = chrono::Utc::now() - tenant.placed_at;
        if age.to_std().map_or(true, |age| age < settled) {
            return None;
        }
        if !self.serves(after).await {
            return None;
        }
        match bind().await {
            Ok(scope) => Some(scope.from_replica()),
            Err(e @ (Error::Unavailable(_) | Error::PoolTimeout)) => {
                self.failed(&e);
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "the replica could not serve a read: the primary will");
                None
            }
        }
    }

    /// Samples both positions, unless another read is sampling them already.
    async fn probe(&self) -> Result<()> {
        let Ok(_probing) = self.probing.try_lock() else {
            return Ok(());
        };
        let primary = self.write_lsn().await?;
        let (replayed, replay_age) = self.replay().await?;
        let now = Instant::now();
        let mut known = lock(&self.known, "a replica's state");
        known.probed_at = Some(now);
        known.replayed = replayed;
        known.replay_age = replay_age;
        known.down_until = None;
        if known
            .samples
            .back()
            .is_none_or(|(_, last)| *last != primary)
        {
            known.samples.push_back((now, primary));
        }
        // Keep what can still tell a lag under the bound apart from one over it.
        let keep = self.options.max_lag * 2 + PROBE_EVERY;
        while known.samples.len() > 1
            && known
                .samples
                .front()
                .is_some_and(|(at, lsn)| now - *at > keep && *lsn <= replayed)
        {
            known.samples.pop_front();
        }
        Ok(())
    }

    /// The replica's replay position; a server that is not in recovery is no replica.
    async fn replayed(&self) -> Result<Lsn> {
        Ok(self.replay().await?.0)
    }

    /// The replica's replay position, and how old its last replayed transaction is.
    async fn replay(&self) -> Result<(Lsn, Duration)> {
        let (found, age): (Option<String>, Option<f64>) = sqlx::query_as(
            "SELECT pg_last_wal_replay_lsn()::text, \
             extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
        )
        .fetch_one(&self.replica)
        .await
        .map_err(Error::from)?;
        let lsn = found
            .ok_or_else(|| {
                Error::Unavailable(format!(
                    "{} is not in recovery: not a replica",
                    redacted(&self.options.url)
                ))
            })?
            .parse()?;
        Ok((lsn, Duration::from_secs_f64(age.unwrap_or(0.0).max(0.0))))
    }

    /// Waits at most `wait` for the replica to replay past `wanted`.
    async fn wait_for(&self, wanted: Lsn) -> bool {
        let deadline = Instant::now() + self.options.wait;
        loop {
            match self.replayed().await {
                Ok(replayed) => {
                    lock(&self.known, "a replica's state").replayed = replayed;
                    if replayed >= wanted {
                        return true;
                    }
                }
                Err(e) => {
                    self.failed(&e);
                    return false;
                }
            }
            if Instant::now() + POLL_EVERY > deadline {
                return false;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

async fn position(pool: &PgPool, sql: &'static str) -> Result<Lsn> {
    let text: String = sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .map_err(Error::from)?;
    text.parse()
}

/// A URL with its password hidden, for the log.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            u.set_password(Some("***")).ok();
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_reads_and_writes_as_postgresql_writes_it() {
        let lsn: Lsn = "16/B374D848".parse().expect("an LSN");
        assert_eq!(lsn, Lsn((0x16 << 32) | 0xB374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert!("0/0".parse::<Lsn>().is_ok());
        for bad in ["", "16", "/1", "1/", "G/1", "123456789/1", "1/2/3"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_lag_is_how_long_ago_the_primary_passed_the_replay() {
        let start = Instant::now();
        let mut known = Known {
            replayed: Lsn(100),
            ..Known::default()
        };
        known.samples.push_back((start, Lsn(100)));
        known
            .samples
            .push_back((start + Duration::from_millis(200), Lsn(150)));
        known.replay_age = Duration::from_millis(300);
        assert_eq!(
            known.lag(start + Duration::from_millis(700)),
            Duration::from_millis(500)
        );
        // After a quiet spell the only sample is already ahead: the replay's age tells.
        let mut quiet = Known {
            replayed: Lsn(100),
            replay_age: Duration::from_secs(2),
            ..Known::default()
        };
        quiet.samples.push_back((start, Lsn(150)));
        assert_eq!(quiet.lag(start), Duration::from_secs(2));
        known.replayed = Lsn(150);
        assert_eq!(
            known.lag(start + Duration::from_millis(700)),
            Duration::ZERO
        );
    }
}
