//! `splatcast relay`: one machine's MoQ relay on moq-net's origin machinery. Rooms are path
//! prefixes (`rooms/<room>/<participant>`); publishers need a token; subscribers of a public
//! room need none. The latest group of every track stays cached for late joiners, and a
//! subscriber that falls behind skips to the newest group (moq-net's delivery rule), so no
//! viewer makes the relay buffer without bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use moq_net::origin;

use crate::address::room_of;
use crate::server::{Admission, Grant, serve_sessions};
use crate::token::Key;
use crate::{Identity, NetError, tls};

/// How a relay runs.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Its TLS identity.
    pub identity: Identity,
    /// The key tokens are checked with.
    pub key: Key,
    /// Rooms whose broadcasts need a token to watch.
    pub private_rooms: Vec<String>,
    /// Cap on cached media across the relay, in bytes.
    pub cache_bytes: u64,
    /// How long a group that is no longer the latest stays cached.
    pub cache_age: Duration,
}

/// A bound relay.
pub struct Relay {
    endpoint: quinn::Endpoint,
    origin: origin::Producer,
    config: Arc<RelayConfig>,
}

impl Relay {
    /// Binds `listen` (UDP). Must run inside a tokio runtime.
    pub fn bind(listen: SocketAddr, config: RelayConfig) -> Result<Self, NetError> {
        let endpoint = tls::server_endpoint(listen, &config.identity)?;
        let mut origin_config = origin::Config::default();
        origin_config.pool = moq_net::cache::Pool::new(
            moq_net::cache::Config::default()
                .with_capacity(config.cache_bytes)
                .with_expiry(config.cache_age),
        );
        origin_config.cache_duration = config.cache_age;
        let (origin, driver) = origin::Producer::new(origin_config);
        crate::spawn_driver(driver);
        Ok(Self {
            endpoint,
            origin,
            config: Arc::new(config),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Accepts sessions until the endpoint closes. A failing session ends alone.
    pub async fn run(self) -> Result<(), NetError> {
        tokio::spawn(keep_warm(self.origin.consume()));
        let config = self.config.clone();
        serve_sessions(&self.endpoint, &self.origin, move |a| {
            admit(&config.key, &config.private_rooms, a, SystemTime::now())
        })
        .await;
        Ok(())
    }
}

/// Keeps every announced broadcast's catalog and tracks subscribed from its publisher, so the
/// relay always holds their latest group: a joiner is answered from here in one round trip,
/// instead of waiting while the relay asks the publisher (measured: the catalog and the first
/// group came 90–170 ms after a joiner's subscriptions were answered).
async fn keep_warm(origin: origin::Consumer) {
    let mut announced = origin.announced();
    let mut warm: std::collections::HashMap<String, tokio::task::JoinHandle<()>> =
        Default::default();
    while let Some(update) = announced.next().await {
        let path = update.prefix.as_str().to_owned();
        if let Some(task) = warm.remove(&path) {
            task.abort();
        }
        if !update.kind.is_active() {
            continue;
        }
        let origin = origin.clone();
        let task = tokio::spawn(async move {
            let Ok(broadcast) = origin.routed_broadcast(path.as_str()).await else {
                return;
            };
            let Ok(catalog) = crate::StreamCatalog::read(&broadcast).await else {
                return;
            };
            let renditions = catalog.ladder.len().max(1);
            let mut readers = tokio::task::JoinSet::new();
            // The catalog track itself, then every rendition's tracks.
            let names = std::iter::once(hang::Catalog::DEFAULT_NAME.to_owned()).chain(
                (0..renditions)
                    .filter_map(|k| catalog.rendition(k))
                    .flat_map(|view| view.tracks.into_iter().map(|(_, name)| name)),
            );
            for name in names {
                let Ok(track) = broadcast.track(&name) else {
                    continue;
                };
                let pending = track.subscribe(moq_net::track::Subscription::default());
                readers.spawn(async move {
                    let Ok(mut subscriber) = pending.await else {
                        return;
                    };
                    // Read and drop: the relay's cache keeps the latest group.
                    while let Ok(Some(mut group)) = subscriber.recv_group().await {
                        while let Ok(Some(_)) = group.read_frame().await {}
                    }
                });
            }
            while readers.join_next().await.is_some() {}
        });
        warm.insert(update.prefix.as_str().to_owned(), task);
    }
}

/// The relay's rule (also `splatcast auth`'s, for moq-relay): a valid token grants what it
/// says, until it expires; without one, watching a room that is not private.
pub(crate) fn admit(
    key: &Key,
    private_rooms: &[String],
    admission: &Admission,
    now: SystemTime,
) -> Result<Grant, NetError> {
    if let Some(token) = &admission.token {
        let claims = key.verify(token, now)?;
        let permissions = claims.authorize(&admission.path)?;
        return Ok(Grant {
            publish: permissions.publish,
            subscribe: permissions.subscribe,
            expires: claims.expires,
        });
    }
    match room_of(&admission.path) {
        Some(room) if private_rooms.iter().any(|r| r == room) => Err(NetError::Refused(format!(
            "room '{room}' is private: watching it needs a token"
        ))),
        Some(_) => Ok(Grant {
            subscribe: vec![String::new()],
            ..Grant::default()
        }),
        None => Err(NetError::Refused(format!(
            "'{}' is not a room path (rooms/<room>[/<participant>]) and no token was given",
            admission.path
        ))),
    }
}
