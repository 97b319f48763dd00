//! The one `LISTEN` loop of a process: a connection of its own on the channels it is given
//! (the catalog's [`CATALOG_CHANNEL`](crate::plumbing::catalog::CATALOG_CHANNEL), and an
//! application's own), reconnected a second after it drops, whose notices every process-wide
//! cache subscribes to: the hybrid store's placements, the demo's tenants, tokens and roles.
//!
//! While the connection is down, notices are lost; a subscriber hears [`Notice::Lost`] when
//! it drops, at each attempt to connect that fails, and again when it is back (and when the
//! subscriber fell too far behind to be told everything), and treats everything it cached as
//! changed.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::broadcast;

/// What a subscriber hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A notice on `channel` with `payload` (for the catalog's channel, a tenant's slug).
    Heard {
        /// The channel it came on.
        channel: String,
        /// What it carried.
        payload: String,
    },
    /// Notices may have been missed: the connection dropped or came back, or this
    /// subscriber fell behind. Everything cached may have changed.
    Lost,
}

/// The process's listening connection. Cheap to clone; the loop stops when the last clone and
/// the last [`Subscriber`] are dropped.
#[derive(Debug, Clone)]
pub struct Notices {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sender: broadcast::Sender<Notice>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How many notices a subscriber may fall behind before it hears [`Notice::Lost`] instead.
const BACKLOG: usize = 1024;

impl Notices {
    /// Starts listening on `channels` at `url` (a connection of its own, held for as long as
    /// a clone lives). Returns at once; the first connection is made in the background.
    pub fn start(url: &str, channels: &[&str]) -> Self {
        let (sender, _) = broadcast::channel(BACKLOG);
        let task = tokio::spawn(listen(
            url.to_owned(),
            channels.iter().map(|c| (*c).to_owned()).collect(),
            sender.clone(),
        ));
        Notices {
            inner: Arc::new(Inner { sender, task }),
        }
    }

    /// A new subscriber: hears every notice from now on, and keeps the loop running while it
    /// lives.
    pub fn subscribe(&self) -> Subscriber {
        Subscriber {
            receiver: self.inner.sender.subscribe(),
            _loop: self.clone(),
        }
    }
}

/// One cache's end of [`Notices`].
#[derive(Debug)]
pub struct Subscriber {
    receiver: broadcast::Receiver<Notice>,
    _loop: Notices,
}

impl Subscriber {
    /// The next notice (never `None` while this subscriber keeps the loop running; `None`
    /// only if the loop's task ended).
    pub async fn next(&mut self) -> Option<Notice> {
        match self.receiver.recv().await {
            Ok(notice) => Some(notice),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Notice::Lost),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

async fn listen(url: String, channels: Vec<String>, sender: broadcast::Sender<Notice>) {
    let mut ever_connected = false;
    loop {
        let listener = async {
            let mut l = PgListener::connect(&url).await?;
            l.listen_all(channels.iter().map(String::as_str)).await?;
            Ok::<_, sea_orm::sqlx::Error>(l)
        };
        match listener.await {
            Ok(mut l) => {
                // What was announced before this connection listened is unknown (nothing
                // was cached before the first one).
                if ever_connected {
                    sender.send(Notice::Lost).ok();
                }
                ever_connected = true;
                loop {
                    match l.try_recv().await {
                        Ok(Some(n)) => {
                            sender
                                .send(Notice::Heard {
                                    channel: n.channel().to_owned(),
                                    payload: n.payload().to_owned(),
                                })
                                .ok();
                        }
                        // The connection was lost: whatever is announced until the next one
                        // listens is missed.
                        Ok(None) => {
                            sender.send(Notice::Lost).ok();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "listening for notices");
                            sender.send(Notice::Lost).ok();
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                // Down: whatever is announced meanwhile is missed (the hybrid store's loop
                // before this one counted every tenant as changed here too).
                tracing::warn!(error = %e, "cannot listen for notices");
                sender.send(Notice::Lost).ok();
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
