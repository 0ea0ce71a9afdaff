//! A room as a source (the room view): every participant's live broadcast under
//! `rooms/<room>/`, subscribed as it is announced and dropped when it is retracted, each
//! decoded frame by frame with its own decoders and catch-up rule.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use glam::Vec3;

use splatcast_net::{
    Address, NetError, RoomChange, Trust, install_crypto, refused, subscribe_frames, watch_room,
    with_backoff,
};
use splatcast_protocol::stream::LiveFrame;
use splatcast_shaders::orbit::Up;

use crate::live::{Backlog, JOIN_TIMEOUT, LiveDecoded, MAX_LAG, REJOIN_LOST, network_runtime};
use crate::source::SourceError;

/// What the network thread reports.
enum Event {
    Joined(u64, String, f64),
    Frame(u64, Box<LiveFrame>, Instant),
    Broken(u64, String),
    Left(u64),
    Note(String),
    Failed(NetError),
    Ended,
}

/// What happened in the room.
pub enum RoomUpdate {
    /// A participant's broadcast is playing (its catalog was read).
    Joined {
        /// Stable for as long as it stays.
        member: u64,
        /// Its name (the path segment after the room).
        name: String,
    },
    /// A participant left.
    Left {
        /// Which.
        member: u64,
    },
    /// A participant's next frame.
    Frame {
        /// Whose.
        member: u64,
        /// The frame.
        frame: LiveDecoded,
    },
    /// Something worth a line in the log (a broken frame, a reconnect).
    Note(String),
}

struct Member {
    name: String,
    frames: Backlog,
}

/// A subscription to everyone in a room.
pub struct RoomSource {
    events: Receiver<Event>,
    members: BTreeMap<u64, Member>,
    /// Participants that left before their catalog arrived (a late `Joined` is ignored).
    gone: HashSet<u64>,
    pending: VecDeque<RoomUpdate>,
    connected: Duration,
}

impl RoomSource {
    /// Connects to the room at `address` (`moq://…/rooms/<room>`); succeeds once the session
    /// is up, however many participants are there (at most [`JOIN_TIMEOUT`]).
    pub fn open(address: &Address, trust: Trust) -> Result<Self, SourceError> {
        install_crypto();
        let started = Instant::now();
        let (tx, events) = channel();
        let (ready_tx, ready) = channel();
        let address = address.clone();
        std::thread::Builder::new()
            .name("splatcast-room".into())
            .spawn(move || network(address, trust, ready_tx, tx))?;
        match ready.recv_timeout(JOIN_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(SourceError::Silent(JOIN_TIMEOUT)),
        }
        Ok(Self {
            events,
            members: BTreeMap::new(),
            gone: HashSet::new(),
            pending: VecDeque::new(),
            connected: started.elapsed(),
        })
    }

    /// Connect → session up.
    pub fn connected(&self) -> Duration {
        self.connected
    }

    /// Frames thrown away to catch up, over every participant.
    pub fn skipped(&self) -> u64 {
        self.members.values().map(|m| m.frames.skipped).sum()
    }

    /// The next thing that happened: a participant joining or leaving first, then the oldest
    /// waiting frame of any participant, decoded; `Ok(None)` when nothing came within `wait`.
    pub fn next(&mut self, wait: Duration) -> Result<Option<RoomUpdate>, SourceError> {
        while let Ok(event) = self.events.try_recv() {
            self.take(event)?;
        }
        if self.pending.is_empty() && self.members.values().all(|m| m.frames.is_empty()) {
            match self.events.recv_timeout(wait) {
                Ok(event) => self.take(event)?,
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => return Err(SourceError::Ended),
            }
        }
        if let Some(update) = self.pending.pop_front() {
            return Ok(Some(update));
        }
        let Some((&member, m)) = self
            .members
            .iter_mut()
            .filter(|(_, m)| !m.frames.is_empty())
            .min_by_key(|(_, m)| m.frames.oldest())
        else {
            return Ok(None);
        };
        match m.frames.decode_next() {
            Ok(Some(frame)) => Ok(Some(RoomUpdate::Frame { member, frame })),
            Ok(None) => Ok(None),
            Err(e) => Ok(Some(RoomUpdate::Note(format!("{}: {e}", m.name)))),
        }
    }

    /// Drops every participant's frames before its newest key frame (back from the
    /// background).
    pub fn resync(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            let _ = self.take(event);
        }
        for m in self.members.values_mut() {
            m.frames.broken();
        }
    }

    fn take(&mut self, event: Event) -> Result<(), SourceError> {
        match event {
            Event::Joined(member, _, _) if self.gone.remove(&member) => {}
            Event::Joined(member, name, fps) => {
                self.members.insert(
                    member,
                    Member {
                        name: name.clone(),
                        frames: Backlog::new(fps),
                    },
                );
                self.pending.push_back(RoomUpdate::Joined { member, name });
            }
            Event::Frame(member, frame, at) => {
                if let Some(m) = self.members.get_mut(&member) {
                    m.frames.push(frame, at);
                }
            }
            Event::Broken(member, why) => {
                if let Some(m) = self.members.get_mut(&member) {
                    m.frames.broken();
                    self.pending
                        .push_back(RoomUpdate::Note(format!("{}: {why}", m.name)));
                }
            }
            Event::Left(member) => {
                if self.members.remove(&member).is_some() {
                    self.pending.push_back(RoomUpdate::Left { member });
                } else {
                    self.gone.insert(member);
                }
            }
            Event::Note(line) => self.pending.push_back(RoomUpdate::Note(line)),
            Event::Failed(e) => return Err(e.into()),
            Event::Ended => return Err(SourceError::Ended),
        }
        Ok(())
    }
}

/// The network thread: watch the room's announcements; subscribe to each participant that
/// joins, drop it when it leaves. When the relay goes away everyone counts as gone and the
/// viewer reconnects with backoff (for [`REJOIN_LOST`]); the announcements bring them back.
fn network(
    address: Address,
    trust: Trust,
    ready: Sender<Result<(), NetError>>,
    events: Sender<Event>,
) {
    let runtime = match network_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    runtime.block_on(async move {
        let join = || async {
            tokio::time::timeout(JOIN_TIMEOUT, watch_room(&address, &trust))
                .await
                .map_err(|_| NetError::NotSplatcast("the relay did not answer".into()))?
        };
        let (mut session, mut room) = match join().await {
            Ok(joined) => joined,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        if ready.send(Ok(())).is_err() {
            return;
        }
        let mut next_id = 0u64;
        loop {
            let mut members: HashMap<String, (u64, tokio::task::JoinHandle<()>)> = HashMap::new();
            let why = loop {
                tokio::select! {
                    change = room.next() => match change {
                        None => break "the relay closed the room".to_string(),
                        Some(Ok(RoomChange::Joined(name, broadcast))) => {
                            if let Some((id, task)) = members.remove(&name) {
                                task.abort();
                                let _ = events.send(Event::Left(id));
                            }
                            let id = next_id;
                            next_id += 1;
                            let task = tokio::spawn(member(id, name.clone(), broadcast, events.clone()));
                            members.insert(name, (id, task));
                        }
                        Some(Ok(RoomChange::Left(name))) => {
                            if let Some((id, task)) = members.remove(&name) {
                                task.abort();
                                let _ = events.send(Event::Left(id));
                            }
                        }
                        Some(Err(e)) => {
                            let _ = events.send(Event::Note(e.to_string()));
                        }
                    },
                    err = session.closed() => {
                        if refused(&err) {
                            let _ = events.send(Event::Failed(err.into()));
                            return;
                        }
                        break format!("connection lost ({err}); reconnecting");
                    }
                }
            };
            for (_, (id, task)) in members.drain() {
                task.abort();
                let _ = events.send(Event::Left(id));
            }
            if events.send(Event::Note(why)).is_err() {
                return;
            }
            match with_backoff(REJOIN_LOST, join).await {
                Ok((s, r)) => (session, room) = (s, r),
                Err(_) => {
                    let _ = events.send(Event::Ended);
                    return;
                }
            }
        }
    });
}

/// One participant: read its catalog, then forward its frames as they complete.
async fn member(
    id: u64,
    name: String,
    broadcast: splatcast_net::moq_net::broadcast::Consumer,
    events: Sender<Event>,
) {
    let mut subscription = match subscribe_frames(broadcast, MAX_LAG).await {
        Ok(s) => s,
        Err(e) => {
            let _ = events.send(Event::Note(format!("{name}: {e}")));
            return;
        }
    };
    if events
        .send(Event::Joined(id, name, subscription.catalog.fps()))
        .is_err()
    {
        return;
    }
    while let Some(item) = subscription.next().await {
        let event = match item {
            Ok(frame) => Event::Frame(id, Box::new(frame), Instant::now()),
            Err(e) => Event::Broken(id, e.to_string()),
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// Where each participant stands in the room view: side by side along the horizontal axis
/// across the view, in seats taken in joining order (a seat freed by someone leaving is taken
/// by the next to join, so nobody moves when others come and go), each seat wide enough for
/// the largest participant seen.
#[derive(Clone, Debug)]
pub struct Seating {
    seats: Vec<Option<u64>>,
    centres: BTreeMap<u64, Vec3>,
    radius: f32,
    across: Vec3,
}

impl Seating {
    /// An empty room whose world `up` is as given.
    pub fn new(up: Up) -> Self {
        // The orbit camera's horizontal axis at azimuth 0 (`Orbit::camera`).
        let across = match up {
            Up::PosX | Up::NegX => Vec3::Y,
            _ => Vec3::X,
        };
        Self {
            seats: Vec::new(),
            centres: BTreeMap::new(),
            radius: 0.0,
            across,
        }
    }

    /// Whether `member` has a seat.
    pub fn seated(&self, member: u64) -> bool {
        self.centres.contains_key(&member)
    }

    /// Seats `member`, whose scene has this centre and radius, in the first free seat.
    pub fn seat(&mut self, member: u64, centre: Vec3, radius: f32) {
        if self.seated(member) {
            return;
        }
        if radius.is_finite() {
            self.radius = self.radius.max(radius);
        }
        self.centres.insert(
            member,
            if centre.is_finite() {
                centre
            } else {
                Vec3::ZERO
            },
        );
        match self.seats.iter_mut().find(|s| s.is_none()) {
            Some(free) => *free = Some(member),
            None => self.seats.push(Some(member)),
        }
    }

    /// Frees `member`'s seat.
    pub fn leave(&mut self, member: u64) {
        self.centres.remove(&member);
        for seat in &mut self.seats {
            if *seat == Some(member) {
                *seat = None;
            }
        }
        while self.seats.last() == Some(&None) {
            self.seats.pop();
        }
    }

    fn spacing(&self) -> f32 {
        2.5 * self.radius.max(1e-3)
    }

    /// What to add to `member`'s positions to stand it in its seat.
    pub fn offset(&self, member: u64) -> Option<Vec3> {
        let seat = self.seats.iter().position(|s| *s == Some(member))?;
        Some(self.across * (seat as f32 * self.spacing()) - self.centres[&member])
    }

    /// Centre and radius of the occupied seats, for the camera; `None` when nobody is there.
    pub fn framing(&self) -> Option<(Vec3, f32)> {
        let occupied: Vec<usize> = (0..self.seats.len())
            .filter(|&i| self.seats[i].is_some())
            .collect();
        let (first, last) = (*occupied.first()?, *occupied.last()?);
        let spacing = self.spacing();
        let middle = (first + last) as f32 / 2.0 * spacing;
        let half = (last - first) as f32 / 2.0 * spacing;
        Some((self.across * middle, half + self.radius.max(1e-3)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participants_sit_side_by_side_and_keep_their_seats() {
        let mut s = Seating::new(Up::NegY);
        s.seat(7, Vec3::new(5.0, 1.0, 0.0), 1.0);
        s.seat(9, Vec3::new(-3.0, 0.0, 2.0), 2.0);
        // Each scene's centre lands on its seat, seats 2.5 × the largest radius apart.
        let seat = |s: &Seating, m, c: Vec3| c + s.offset(m).unwrap();
        assert_eq!(seat(&s, 7, Vec3::new(5.0, 1.0, 0.0)), Vec3::ZERO);
        assert_eq!(
            seat(&s, 9, Vec3::new(-3.0, 0.0, 2.0)),
            Vec3::new(5.0, 0.0, 0.0)
        );
        assert_eq!(s.framing(), Some((Vec3::new(2.5, 0.0, 0.0), 4.5)));
        // The first leaves: the second stays where it is; the next to join takes seat 0.
        s.leave(7);
        assert_eq!(
            seat(&s, 9, Vec3::new(-3.0, 0.0, 2.0)),
            Vec3::new(5.0, 0.0, 0.0)
        );
        assert_eq!(s.framing(), Some((Vec3::new(5.0, 0.0, 0.0), 2.0)));
        s.seat(11, Vec3::ZERO, 0.5);
        assert_eq!(s.offset(11), Some(Vec3::ZERO));
        s.leave(9);
        s.leave(11);
        assert_eq!(s.framing(), None);
        assert!(!s.seated(9));
        // Up along x: the row runs along y, across the default view.
        let mut x = Seating::new(Up::PosX);
        x.seat(1, Vec3::ZERO, 1.0);
        x.seat(2, Vec3::ZERO, 1.0);
        assert_eq!(x.offset(2), Some(Vec3::new(0.0, 2.5, 0.0)));
    }
}
