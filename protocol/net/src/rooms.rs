//! A relay's rooms, each with memory of its own: a room's broadcasts are cached in the room's
//! own moq-net origin and cache pool, so a busy room evicts its own old groups and never another
//! room's. One shared origin carries every room's announcements (bridged as served routes that
//! hand out the room's broadcasts themselves, no copy), so a session above the rooms — a
//! cluster peer — sees them all.
//!
//! A room exists while a session is in it, and while it exists it keeps its broadcasts' latest
//! groups pulled from their publishers, so a joiner is answered from the relay in one round
//! trip. Pulling only while someone watches was measured and dropped: the first viewer then
//! waits for the relay to ask the publisher (join 329 ms against 260 ms at 50 ms RTT), and
//! the room's cache bound caps what an unwatched room holds anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moq_net::{announce, cache, origin};
use tokio::task::JoinHandle;

use crate::NetError;

/// How much memory rooms may take.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RoomLimits {
    /// Cached media per room, bytes (moq-net's pool target: a room's latest groups are kept
    /// even above it).
    pub bytes: u64,
    /// How long a group that nobody reads stays cached.
    pub age: Duration,
    /// Rooms open at once.
    pub rooms: usize,
}

/// Every room of a relay and the origin they are all announced in.
pub(crate) struct Rooms {
    shared: origin::Producer,
    limits: RoomLimits,
    open: Mutex<HashMap<String, Room>>,
}

struct Room {
    origin: origin::Producer,
    pool: cache::Pool,
    sessions: usize,
    _tasks: [Task; 2],
}

/// A session's place in a room; the room closes when the last one drops.
pub(crate) struct Seat {
    rooms: Arc<Rooms>,
    room: String,
}

impl Rooms {
    pub(crate) fn new(limits: RoomLimits) -> Arc<Self> {
        let (shared, driver) = origin::Producer::new(origin::Config::default());
        crate::spawn_driver(driver);
        Arc::new(Self {
            shared,
            limits,
            open: Mutex::default(),
        })
    }

    /// The origin every room is announced in: what sessions watch.
    pub(crate) fn shared(&self) -> &origin::Producer {
        &self.shared
    }

    /// Takes a seat in `room` (opening it if needed) and returns the room's own origin, the
    /// one its publishers publish into. Refused when `rooms` rooms are open already.
    pub(crate) fn enter(
        self: &Arc<Self>,
        room: &str,
    ) -> Result<(origin::Producer, Seat), NetError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if !open.contains_key(room) {
            if open.len() >= self.limits.rooms {
                return Err(NetError::Refused(format!(
                    "room '{room}' cannot open: this relay holds {} rooms already",
                    self.limits.rooms
                )));
            }
            let pool = cache::Pool::new(
                cache::Config::default()
                    .with_capacity(self.limits.bytes)
                    .with_expiry(self.limits.age),
            );
            let mut config = origin::Config::default();
            config.pool = pool.clone();
            config.cache_duration = self.limits.age;
            let (origin, driver) = origin::Producer::new(config);
            crate::spawn_driver(driver);
            let tasks = [
                Task(tokio::spawn(bridge(origin.consume(), self.shared.clone()))),
                Task(tokio::spawn(keep_warm(origin.consume()))),
            ];
            open.insert(
                room.to_owned(),
                Room {
                    origin,
                    pool,
                    sessions: 0,
                    _tasks: tasks,
                },
            );
        }
        let entry = open.get_mut(room).expect("inserted above");
        entry.sessions += 1;
        Ok((
            entry.origin.clone(),
            Seat {
                rooms: self.clone(),
                room: room.to_owned(),
            },
        ))
    }

    /// Bytes cached for `room` now, when it is open.
    pub(crate) fn cached_bytes(&self, room: &str) -> Option<u64> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(room).map(|r| r.pool.used())
    }

    fn leave(&self, room: &str) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = open.get_mut(room) else {
            return;
        };
        entry.sessions -= 1;
        if entry.sessions == 0 {
            // Dropping the room aborts its tasks, and theirs in turn.
            open.remove(room);
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.rooms.leave(&self.room);
    }
}

/// Announces each of `room`'s broadcasts in `shared` as a served route whose requests are
/// answered with the room's broadcast itself, and retracts it when the room's ends. Sessions in
/// a room watch the room's origin directly, not this route: through it, moq-net hands a joiner
/// the group in progress without the frames written before the request (measured: joiners lost
/// the first 11 of the GOP's 30 frames and started at the next key frame), which a cluster
/// peer, joining once, can afford.
async fn bridge(room: origin::Consumer, shared: origin::Producer) {
    each_broadcast(room.clone(), |path, update| {
        let route = shared.dynamic(path, update.route).ok()?;
        let room = room.clone();
        Some(tokio::spawn(async move {
            while let Ok(request) = route.requested_broadcast().await {
                match room.routed_broadcast(request.path().as_str()).await {
                    Ok(broadcast) => request.accept(broadcast),
                    Err(e) => request.reject(e),
                }
            }
        }))
    })
    .await
}

/// Keeps every broadcast announced in a room subscribed from its publisher — its catalog and
/// every rendition's tracks — so the room's pool always holds their latest groups: a joiner is
/// answered from here in one round trip instead of waiting while the relay asks the publisher
/// (measured: the catalog and the first group came 90–170 ms after a joiner's subscriptions were
/// answered).
async fn keep_warm(origin: origin::Consumer) {
    each_broadcast(origin.clone(), |path, _| {
        Some(tokio::spawn(pull(origin.clone(), path.to_owned())))
    })
    .await
}

/// Runs `start`'s task for each broadcast announced in `origin` while it is announced
/// (restarted when its route changes, aborted when it is retracted, when `origin` ends, or when
/// this future is dropped or aborted — a closing room must not leave a route announced).
async fn each_broadcast(
    origin: origin::Consumer,
    mut start: impl FnMut(&str, announce::Update) -> Option<JoinHandle<()>>,
) {
    let mut announced = origin.announced();
    let mut running: HashMap<String, Task> = HashMap::new();
    while let Some(update) = announced.next().await {
        let path = update.prefix.as_str().to_owned();
        running.remove(&path);
        if !update.kind.is_active() {
            continue;
        }
        if let Some(task) = start(&path, update) {
            running.insert(path, Task(task));
        }
    }
}

/// A spawned task that is aborted when this handle drops (tokio's own handles detach).
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads and drops every group of the broadcast at `path` until it ends.
async fn pull(origin: origin::Consumer, path: String) {
    let Ok(broadcast) = origin.routed_broadcast(path.as_str()).await else {
        return;
    };
    let Ok(catalog) = crate::StreamCatalog::read(&broadcast).await else {
        return;
    };
    let renditions = catalog.ladder.len().max(1);
    let mut readers = tokio::task::JoinSet::new();
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
            while let Ok(Some(mut group)) = subscriber.recv_group().await {
                while let Ok(Some(_)) = group.read_frame().await {}
            }
        });
    }
    while readers.join_next().await.is_some() {}
}
