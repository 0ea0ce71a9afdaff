//! `splatcast relay`: one machine's MoQ relay on moq-net's origin machinery. Rooms are path
//! prefixes (`rooms/<room>/<participant>`); publishers need a token; subscribers of a public
//! room need none. Memory is bounded three ways: each room caches its broadcasts in a pool of
//! its own (the latest group of every track kept for late joiners), at most so many rooms are
//! open, and each peer's connection holds at most its send window unacknowledged — a
//! subscriber that falls behind skips to the newest group (moq-net's delivery rule) instead of
//! making the relay buffer for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::address::room_of;
use crate::rooms::{RoomLimits, Rooms};
use crate::server::{Admission, Admitted, Grant, serve_sessions};
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
    /// Cap on one room's cached media, in bytes.
    pub room_bytes: u64,
    /// Cap on rooms open at once (a room is open while anyone is in it).
    pub max_rooms: usize,
    /// Cap on what one peer's connection holds unacknowledged, in bytes.
    pub peer_bytes: u64,
    /// How long a group that nobody reads stays cached.
    pub cache_age: Duration,
}

impl RelayConfig {
    /// The defaults of `splatcast relay`: 64 MiB a room, 64 rooms, 4 MiB a peer, 30 s.
    pub fn new(identity: Identity, key: Key) -> Self {
        Self {
            identity,
            key,
            private_rooms: Vec::new(),
            room_bytes: 64 << 20,
            max_rooms: 64,
            peer_bytes: 4 << 20,
            cache_age: Duration::from_secs(30),
        }
    }
}

/// A bound relay.
pub struct Relay {
    endpoint: quinn::Endpoint,
    rooms: Arc<Rooms>,
    config: Arc<RelayConfig>,
}

/// Looks into a running relay's rooms (for tests and statistics).
#[derive(Clone)]
pub struct RelayRooms(Arc<Rooms>);

impl RelayRooms {
    /// Media bytes `room` caches now, or `None` when it is not open.
    pub fn cached_bytes(&self, room: &str) -> Option<u64> {
        self.0.cached_bytes(room)
    }
}

impl Relay {
    /// Binds `listen` (UDP). Must run inside a tokio runtime.
    pub fn bind(listen: SocketAddr, config: RelayConfig) -> Result<Self, NetError> {
        let endpoint = tls::server_endpoint(listen, &config.identity, config.peer_bytes)?;
        let rooms = Rooms::new(RoomLimits {
            bytes: config.room_bytes,
            age: config.cache_age,
            rooms: config.max_rooms,
        });
        Ok(Self {
            endpoint,
            rooms,
            config: Arc::new(config),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.endpoint.local_addr()?)
    }

    /// A view of the relay's rooms that outlives [`Relay::run`] taking the relay.
    pub fn rooms(&self) -> RelayRooms {
        RelayRooms(self.rooms.clone())
    }

    /// Accepts sessions until the endpoint closes. A failing session ends alone.
    pub async fn run(self) -> Result<(), NetError> {
        let (config, rooms) = (self.config.clone(), self.rooms.clone());
        serve_sessions(&self.endpoint, move |a| {
            let grant = admit(&config.key, &config.private_rooms, a, SystemTime::now())?;
            place(&rooms, a, grant)
        })
        .await;
        Ok(())
    }
}

/// Seats a session in its room: it publishes into and watches the room's own origin (and
/// pool). A session above any room (a cluster peer with a token for `rooms`) watches the
/// origin every room is announced in, and publishes nowhere.
fn place(rooms: &Arc<Rooms>, admission: &Admission, grant: Grant) -> Result<Admitted, NetError> {
    match room_of(&admission.path) {
        Some(room) => {
            let (origin, seat) = rooms.enter(room)?;
            Ok(Admitted {
                _seat: Some(seat),
                ..Admitted::on(&origin, grant)
            })
        }
        None if grant.publish.is_empty() => Ok(Admitted::on(rooms.shared(), grant)),
        None => Err(NetError::Refused(format!(
            "'{}' is not in a room: publish at rooms/<room>/<participant>",
            admission.path
        ))),
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
