//! The decode pipeline's CPU half: a worker thread decodes GOPs ahead of the playback clock
//! into a bounded queue; the frame loop takes what the clock asks for without ever waiting.
//! When decoding falls behind, the clock wins: frames that arrive late are dropped, and the
//! worker jumps ahead to the GOP the clock has reached instead of decoding ones already past.
//! A live source is decoded frame by frame as frames arrive; the queue then keeps the newest.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use splatcast_protocol::av1::Picture;
use splatcast_protocol::gop::GopSide;

use crate::live::LiveSource;
use crate::room::{RoomSource, RoomUpdate};
use crate::source::{PlaneSource, SourceError};

/// A position on the playback timeline: which pass over the stream (looping adds one) and
/// which frame. Ordered, so "earlier than the clock" is a comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Pass over the stream.
    pub lap: u64,
    /// Frame index.
    pub frame: u64,
}

/// One decoded frame: its planes and the side data to unpack them with.
pub struct DecodedFrame {
    /// Where it sits on the timeline.
    pub at: Position,
    /// Its GOP.
    pub gop: usize,
    /// Whose frame it is in a room (0 otherwise).
    pub member: u64,
    /// The GOP's side data (the same `Arc` for every frame of the GOP).
    pub side: Arc<GopSide>,
    /// One picture per track.
    pub pictures: Vec<Picture>,
    /// When its last chunk arrived (live sources).
    pub arrived: Option<Instant>,
}

/// Running figures for the overlay.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeStats {
    /// Wall-clock decode time per frame of the last GOP, in ms.
    pub ms_per_frame: f64,
    /// Coded bits per second of the last GOP at the stream's frame rate.
    pub bits_per_second: f64,
    /// Frames decoded in all.
    pub decoded: u64,
    /// Live sources: connect → first key frame, in ms.
    pub joined_ms: Option<f64>,
    /// Live sources: frames thrown away to catch up with the broadcast.
    pub skipped: u64,
}

struct State {
    queue: VecDeque<Arc<DecodedFrame>>,
    capacity: usize,
    seek: Option<Position>,
    clock: Position,
    generation: u64,
    looping: bool,
    suspended: bool,
    stop: bool,
    finished: bool,
    log: Vec<String>,
    stats: DecodeStats,
    /// A room's participants by member number.
    members: BTreeMap<u64, String>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the queue usable: it holds only finished frames.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What [`DecodeWorker::take`] found.
#[derive(Default)]
pub struct Taken {
    /// The newest decoded frame at or before the clock, when one arrived since the last take.
    pub frame: Option<Arc<DecodedFrame>>,
    /// Frames the clock passed before they could be shown.
    pub dropped: u64,
}

/// The decode thread and its queue.
pub struct DecodeWorker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    fps: f64,
    frame_count: u64,
    live: bool,
    room: bool,
}

impl DecodeWorker {
    /// Starts decoding `source` from frame 0, keeping up to `capacity` frames ready (one GOP
    /// more may arrive at once, since GOPs decode whole).
    pub fn spawn(mut source: Box<dyn PlaneSource>, capacity: usize) -> Self {
        let (fps, frame_count) = (source.fps(), source.frame_count());
        let log = source.cut_short().into_iter().collect();
        Self::start(
            fps,
            frame_count,
            capacity,
            log,
            DecodeStats::default(),
            move |s| run(source.as_mut(), s),
        )
    }

    /// Decodes a live broadcast frame by frame as frames arrive, keeping the newest `capacity`
    /// (older ones are dropped: a live viewer never waits for the past). Seeks do nothing.
    pub fn spawn_live(mut source: LiveSource, capacity: usize) -> Self {
        let stats = DecodeStats {
            joined_ms: Some(source.joined().as_secs_f64() * 1e3),
            ..DecodeStats::default()
        };
        let mut worker = Self::start(source.fps(), u64::MAX, capacity, Vec::new(), stats, {
            move |s| run_live(&mut source, s)
        });
        worker.live = true;
        worker
    }

    /// Decodes everyone in a room as their frames arrive. Frames are numbered in the order
    /// they are decoded, across participants; [`DecodeWorker::take_all`] hands them over and
    /// [`DecodeWorker::members`] says who is there.
    pub fn spawn_room(mut source: RoomSource, capacity: usize) -> Self {
        let stats = DecodeStats {
            joined_ms: Some(source.connected().as_secs_f64() * 1e3),
            ..DecodeStats::default()
        };
        let mut worker = Self::start(30.0, u64::MAX, capacity, Vec::new(), stats, {
            move |s| run_room(&mut source, s)
        });
        worker.live = true;
        worker.room = true;
        worker
    }

    fn start(
        fps: f64,
        frame_count: u64,
        capacity: usize,
        log: Vec<String>,
        stats: DecodeStats,
        body: impl FnOnce(&Shared) + Send + 'static,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                capacity: capacity.max(1),
                seek: None,
                clock: Position::default(),
                generation: 0,
                looping: false,
                suspended: false,
                stop: false,
                finished: false,
                log,
                stats,
                members: BTreeMap::new(),
            }),
            wake: Condvar::new(),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("splatcast-decode".into())
            .spawn(move || body(&worker))
            .ok();
        Self {
            shared,
            thread,
            fps,
            frame_count,
            live: false,
            room: false,
        }
    }

    /// Whether this decodes a live broadcast.
    pub fn live(&self) -> bool {
        self.live
    }

    /// Whether this decodes a room (every participant).
    pub fn room(&self) -> bool {
        self.room
    }

    /// A room's participants now, by member number.
    pub fn members(&self) -> BTreeMap<u64, String> {
        self.shared.lock().members.clone()
    }

    /// Every decoded frame waiting, oldest first (a room's participants each need their
    /// newest).
    pub fn take_all(&self) -> Vec<Arc<DecodedFrame>> {
        let mut s = self.shared.lock();
        let taken: Vec<_> = s.queue.drain(..).collect();
        if !taken.is_empty() {
            self.shared.wake.notify_all();
        }
        taken
    }

    /// The newest decoded frame waiting: a live broadcast's edge.
    pub fn newest(&self) -> Option<Position> {
        self.shared.lock().queue.back().map(|f| f.at)
    }

    /// Blocks until a frame after `after` (any, when `None`) is queued and returns its
    /// position; `None` when decoding ends first or nothing comes within `wait`. For headless
    /// rendering of live broadcasts, where every frame that arrives is drawn.
    pub fn wait_next(&self, after: Option<Position>, wait: Duration) -> Option<Position> {
        let deadline = Instant::now() + wait;
        let mut s = self.shared.lock();
        loop {
            if let Some(f) = s.queue.iter().find(|f| after.is_none_or(|a| f.at > a)) {
                return Some(f.at);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if s.finished || s.stop || left.is_zero() {
                return None;
            }
            s = self
                .shared
                .wake
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Frames per second of the stream.
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// Frames in the stream.
    pub fn frame_count(&self) -> u64 {
        self.frame_count
    }

    /// Restarts decoding at `at` (its GOP is decoded from the start, frames before `at` are
    /// not queued); what was queued is dropped.
    pub fn seek(&self, at: Position) {
        if self.live {
            return;
        }
        let mut s = self.shared.lock();
        s.queue.clear();
        s.seek = Some(at);
        s.clock = at;
        s.generation += 1;
        s.finished = false;
        self.shared.wake.notify_all();
    }

    /// Whether decoding continues at frame 0 of the next lap after the last frame.
    pub fn set_looping(&self, looping: bool) {
        let mut s = self.shared.lock();
        s.looping = looping;
        self.shared.wake.notify_all();
    }

    /// Stops decoding while the app is in the background (the queue is kept).
    pub fn set_suspended(&self, suspended: bool) {
        let mut s = self.shared.lock();
        s.suspended = suspended;
        self.shared.wake.notify_all();
    }

    /// The newest frame at or before `clock`; older queued frames are dropped. Never waits.
    pub fn take(&self, clock: Position) -> Taken {
        let mut s = self.shared.lock();
        if s.clock != clock {
            s.clock = clock;
            self.shared.wake.notify_all();
        }
        let mut taken = Taken::default();
        while s.queue.front().is_some_and(|f| f.at <= clock) {
            if taken.frame.is_some() {
                taken.dropped += 1;
            }
            taken.frame = s.queue.pop_front();
        }
        if taken.frame.is_some() {
            self.shared.wake.notify_all();
        }
        taken
    }

    /// Frames decoded and waiting.
    pub fn buffered(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// True once the last frame was queued and no loop or seek follows.
    pub fn finished(&self) -> bool {
        let s = self.shared.lock();
        s.finished && s.queue.is_empty()
    }

    /// Decode figures.
    pub fn stats(&self) -> DecodeStats {
        self.shared.lock().stats
    }

    /// Messages since the last call: skipped GOPs, a file cut short.
    pub fn drain_log(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.lock().log)
    }

    /// Blocks until a frame at or after `at` is queued or decoding ends; for headless
    /// rendering, where every frame must be shown. Returns false if it never comes.
    pub fn wait_for(&self, at: Position) -> bool {
        let mut s = self.shared.lock();
        loop {
            if s.queue.iter().any(|f| f.at >= at) {
                return true;
            }
            if s.finished || s.stop {
                return false;
            }
            if s.clock < at {
                s.clock = at;
                self.shared.wake.notify_all();
            }
            s = self.shared.wake.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for DecodeWorker {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(source: &mut dyn PlaneSource, shared: &Shared) {
    let frame_count = source.frame_count();
    let mut next = Position::default();
    loop {
        let generation;
        {
            let mut s = shared.lock();
            loop {
                if s.stop {
                    return;
                }
                if let Some(at) = s.seek.take() {
                    next = at;
                }
                let full = s.queue.len() >= s.capacity;
                if !(full || s.suspended || s.finished) {
                    break;
                }
                s = shared.wake.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            // Behind the clock by a whole GOP: skip to where the clock is.
            if s.clock.lap > next.lap
                || (s.clock.lap == next.lap
                    && source.gop_of(s.clock.frame) > source.gop_of(next.frame))
            {
                next = s.clock;
            }
            generation = s.generation;
        }
        let gop = source.gop_of(next.frame);
        let start = Instant::now();
        let decoded = source.decode_gop(gop);
        let elapsed = start.elapsed().as_secs_f64();
        let mut s = shared.lock();
        if s.generation != generation {
            continue; // a seek came in meanwhile; its GOP is decoded next
        }
        match decoded {
            Ok(d) => {
                let n = d.frames.len().max(1) as f64;
                s.stats.ms_per_frame = 1e3 * elapsed / n;
                s.stats.bits_per_second = 8.0 * d.coded_bytes as f64 * source.fps() / n;
                s.stats.decoded += d.frames.len() as u64;
                let end = d.first_frame + d.frames.len() as u64;
                for (k, pictures) in d.frames.into_iter().enumerate() {
                    let frame = d.first_frame + k as u64;
                    if frame >= next.frame {
                        s.queue.push_back(Arc::new(DecodedFrame {
                            at: Position {
                                lap: next.lap,
                                frame,
                            },
                            gop: d.index,
                            member: 0,
                            side: d.side.clone(),
                            pictures,
                            arrived: None,
                        }));
                    }
                }
                next.frame = end.max(source.gop_start(gop + 1));
            }
            Err(e) => {
                let (a, b) = (source.gop_start(gop), source.gop_start(gop + 1));
                s.log
                    .push(format!("GOP {gop} (frames {a}..{b}) skipped: {e}"));
                next.frame = b.max(next.frame + 1);
            }
        }
        if next.frame >= frame_count {
            if s.looping {
                next = Position {
                    lap: next.lap + 1,
                    frame: 0,
                };
            } else {
                s.finished = true;
            }
        }
        shared.wake.notify_all();
    }
}

/// Waits while the app is in the background: `None` once the player stops, else whether it
/// was in the background (then what arrived meanwhile is stale).
fn wait_foreground(shared: &Shared) -> Option<bool> {
    let mut s = shared.lock();
    let mut woke = false;
    while s.suspended && !s.stop {
        s = shared.wake.wait(s).unwrap_or_else(|e| e.into_inner());
        woke = true;
    }
    (!s.stop).then_some(woke)
}

/// A source that delivers as things arrive (a live broadcast, a room).
trait Arriving {
    type Item;
    /// Drops what is stale after the app was in the background.
    fn resync(&mut self);
    /// The next thing within `wait`.
    fn next(&mut self, wait: Duration) -> Result<Option<Self::Item>, SourceError>;
    /// Frames thrown away to catch up.
    fn skipped(&self) -> u64;
    /// Lines for the log.
    fn notes(&mut self) -> Vec<String>;
}

impl Arriving for LiveSource {
    type Item = crate::live::LiveDecoded;

    fn resync(&mut self) {
        LiveSource::resync(self);
    }

    fn next(&mut self, wait: Duration) -> Result<Option<Self::Item>, SourceError> {
        self.next_frame(wait)
    }

    fn skipped(&self) -> u64 {
        LiveSource::skipped(self)
    }

    fn notes(&mut self) -> Vec<String> {
        self.take_notes()
    }
}

impl Arriving for RoomSource {
    type Item = RoomUpdate;

    fn resync(&mut self) {
        RoomSource::resync(self);
    }

    fn next(&mut self, wait: Duration) -> Result<Option<Self::Item>, SourceError> {
        RoomSource::next(self, wait)
    }

    fn skipped(&self) -> u64 {
        RoomSource::skipped(self)
    }

    fn notes(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// The loop of an arriving source, until the player goes away or the source ends (`ended`
/// goes to the log): waits while the app is in the background (dropping what went stale),
/// and hands each item to `take` with the state locked and the seconds it took to come.
fn run_arriving<S: Arriving>(
    source: &mut S,
    shared: &Shared,
    ended: &str,
    mut take: impl FnMut(&mut State, S::Item, f64),
) {
    loop {
        let Some(woke) = wait_foreground(shared) else {
            return;
        };
        if woke {
            source.resync();
        }
        let start = Instant::now();
        let next = source.next(Duration::from_millis(50));
        let elapsed = start.elapsed().as_secs_f64();
        let mut s = shared.lock();
        s.stats.skipped = source.skipped();
        s.log.extend(source.notes());
        match next {
            Ok(None) => continue,
            Ok(Some(item)) => take(&mut s, item, elapsed),
            Err(SourceError::Ended) => {
                s.log.push(ended.into());
                s.finished = true;
                shared.wake.notify_all();
                return;
            }
            Err(e) => s.log.push(e.to_string()),
        }
        shared.wake.notify_all();
    }
}

/// Queues a decoded frame, dropping the oldest when the queue is full (a live viewer never
/// waits for the past).
fn queue_newest(s: &mut State, frame: DecodedFrame) {
    s.queue.push_back(Arc::new(frame));
    while s.queue.len() > s.capacity {
        s.queue.pop_front();
    }
}

/// The live loop: each frame decoded as it arrives, until the broadcast ends or the player
/// goes away.
fn run_live(source: &mut LiveSource, shared: &Shared) {
    let fps = source.fps();
    run_arriving(source, shared, "the broadcast ended", |s, f, elapsed| {
        s.stats.ms_per_frame = 1e3 * elapsed;
        // Smoothed over about a second: key frames are much larger than the rest.
        let rate = 8.0 * f.bytes as f64 * fps;
        let a = (1.0 / fps.max(1.0)).min(1.0);
        s.stats.bits_per_second = if s.stats.decoded == 0 {
            rate
        } else {
            s.stats.bits_per_second + a * (rate - s.stats.bits_per_second)
        };
        s.stats.decoded += 1;
        let frame = DecodedFrame {
            at: Position {
                lap: 0,
                frame: f.frame,
            },
            gop: f.group as usize,
            member: 0,
            side: f.side,
            pictures: f.pictures,
            arrived: Some(f.arrived),
        };
        queue_newest(s, frame);
    });
}

/// The room loop: who joins and leaves, and every participant's frames as they are decoded
/// (numbered in decoding order), until the player goes away or the room cannot be reached any
/// more.
fn run_room(source: &mut RoomSource, shared: &Shared) {
    let mut number = 0u64;
    // Everyone's coded bytes over about a second.
    let (mut window, mut window_bytes) = (Instant::now(), 0usize);
    let ended = "the room cannot be reached any more";
    run_arriving(source, shared, ended, |s, update, elapsed| match update {
        RoomUpdate::Joined { member, name } => {
            s.log.push(format!("{name} joined"));
            s.members.insert(member, name);
        }
        RoomUpdate::Left { member } => {
            if let Some(name) = s.members.remove(&member) {
                s.log.push(format!("{name} left"));
            }
            s.queue.retain(|f| f.member != member);
        }
        RoomUpdate::Frame { member, frame: f } => {
            s.stats.ms_per_frame = 1e3 * elapsed;
            window_bytes += f.bytes;
            let span = window.elapsed().as_secs_f64();
            if span >= 1.0 {
                s.stats.bits_per_second = 8.0 * window_bytes as f64 / span;
                (window, window_bytes) = (Instant::now(), 0);
            }
            s.stats.decoded += 1;
            let frame = DecodedFrame {
                at: Position {
                    lap: 0,
                    frame: number,
                },
                gop: f.group as usize,
                member,
                side: f.side,
                pictures: f.pictures,
                arrived: Some(f.arrived),
            };
            number += 1;
            queue_newest(s, frame);
        }
        RoomUpdate::Note(line) => s.log.push(line),
    });
}
