//! A live MoQ broadcast as a frame source. A network thread (tokio, QUIC with TLS, MoQ)
//! subscribes to the broadcast and assembles each frame as soon as its last track's chunk
//! arrives; the decode thread decodes it at once, so a viewer is a frame behind the publisher,
//! not a GOP. A viewer that falls behind (a slow decoder, a paused app) skips to the newest key
//! frame instead of buffering.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use splatcast_net::{
    Address, Early, NetError, StreamCatalog, Subscription, Trust, install_crypto, refused,
    subscribe_rendition, watch, with_backoff,
};
use splatcast_protocol::av1::{Picture, PlaneDecoder, Rav1dDecoder};
use splatcast_protocol::gop::GopSide;
use splatcast_protocol::stream::LiveFrame;

use crate::ladder::Abr;
use crate::source::SourceError;

/// How long to wait for the broadcast's first key frame.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Media time a viewer may trail a newer key frame before skipping ahead to it.
pub(crate) const MAX_LAG: Duration = Duration::from_millis(500);

/// How long a viewer tries to reconnect after losing the relay (a restart).
pub(crate) const REJOIN_LOST: Duration = Duration::from_secs(30);

/// How long a viewer waits for a publisher that went away to come back before the broadcast
/// counts as ended.
const REJOIN_GONE: Duration = Duration::from_secs(5);

/// What the network thread reports.
enum Event {
    Frame(Box<LiveFrame>, Instant),
    /// A frame that could not be assembled (a corrupt chunk): the GOP goes on at the next key
    /// frame.
    Broken(String),
    /// The connection or the publisher went away and the viewer is rejoining (a new
    /// subscription starts at a key frame; frames already received are still good).
    Rejoining(String),
    Failed(NetError),
    /// Worth a line in the log (a rendition switch).
    Note(String),
    Ended,
}

/// One decoded live frame.
pub struct LiveDecoded {
    /// Its frame number on the broadcast's timeline.
    pub frame: u64,
    /// Its GOP (MoQ group).
    pub group: u64,
    /// The GOP's side data.
    pub side: Arc<GopSide>,
    /// One picture per plane track.
    pub pictures: Vec<Picture>,
    /// Coded bytes.
    pub bytes: usize,
    /// When its last chunk arrived.
    pub arrived: Instant,
}

/// A subscription to one participant's broadcast, decoding frame by frame.
pub struct LiveSource {
    events: Receiver<Event>,
    frames: Backlog,
    first_side: GopSide,
    joined: Duration,
    notes: Vec<String>,
}

/// The decode side of one live broadcast: frames waiting to be decoded, the AV1 decoders, and
/// the catch-up rule (after an error, or when more than [`MAX_LAG`] behind a newer key frame,
/// go on at the newest key frame). Shared by a single viewer and each member of a room.
pub(crate) struct Backlog {
    waiting: VecDeque<(Box<LiveFrame>, Instant)>,
    decoders: Vec<Box<dyn PlaneDecoder>>,
    fps: f64,
    need_key: bool,
    /// Frames thrown away to catch up.
    pub skipped: u64,
}

impl Backlog {
    pub(crate) fn new(fps: f64) -> Self {
        Self {
            waiting: VecDeque::new(),
            decoders: Vec::new(),
            fps,
            need_key: false,
            skipped: 0,
        }
    }

    pub(crate) fn push(&mut self, frame: Box<LiveFrame>, arrived: Instant) {
        self.waiting.push_back((frame, arrived));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// When the oldest waiting frame arrived.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.waiting.front().map(|(_, at)| *at)
    }

    /// A frame could not be assembled: go on at the next key frame.
    pub(crate) fn broken(&mut self) {
        self.need_key = true;
    }

    /// Decodes the next frame that can be shown, if any is waiting.
    pub(crate) fn decode_next(&mut self) -> Result<Option<LiveDecoded>, SourceError> {
        self.catch_up();
        let Some((frame, arrived)) = self.waiting.pop_front() else {
            return Ok(None);
        };
        if self.decoders.len() != frame.samples.len() {
            self.decoders = (0..frame.samples.len())
                .map(|_| Box::new(Rav1dDecoder::new(1)) as Box<dyn PlaneDecoder>)
                .collect();
        }
        let pictures = frame.decode(&mut self.decoders).inspect_err(|_| {
            self.need_key = true;
        })?;
        Ok(Some(LiveDecoded {
            frame: frame.frame,
            group: frame.group,
            side: frame.side.clone(),
            pictures,
            bytes: frame.bytes,
            arrived,
        }))
    }

    /// Drops what cannot or need not be shown: frames before the next key frame after an
    /// error, and a backlog longer than [`MAX_LAG`] when a newer key frame is in it.
    fn catch_up(&mut self) {
        let max = (MAX_LAG.as_secs_f64() * self.fps).ceil() as usize;
        let newest_key = self.waiting.iter().rposition(|(f, _)| f.index == 0);
        let drop = match newest_key {
            Some(k) if self.waiting.len() > max || self.need_key => k,
            None if self.need_key => self.waiting.len(),
            _ => 0,
        };
        if drop > 0 {
            self.skipped += drop as u64;
            self.waiting.drain(..drop);
        }
        if self.waiting.front().is_some_and(|(f, _)| f.index == 0) {
            self.need_key = false;
        }
    }
}

impl LiveSource {
    /// Connects to `address` (`moq://…/rooms/<room>/<participant>` or `https://…`), subscribes
    /// and waits for the first key frame (at most [`JOIN_TIMEOUT`]).
    pub fn open(address: &Address, trust: Trust) -> Result<Self, SourceError> {
        install_crypto();
        let started = Instant::now();
        let (tx, events) = channel();
        let (fps_tx, fps_rx) = channel();
        let address = address.clone();
        std::thread::Builder::new()
            .name("splatcast-moq".into())
            .spawn(move || network(address, trust, fps_tx, tx))?;
        let fps = match fps_rx.recv_timeout(JOIN_TIMEOUT) {
            Ok(Ok(fps)) => fps,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(first_error(&events).unwrap_or(SourceError::Silent(JOIN_TIMEOUT))),
        };
        let left = JOIN_TIMEOUT.saturating_sub(started.elapsed());
        let (first, arrived) = loop {
            match events.recv_timeout(left) {
                Ok(Event::Frame(frame, at)) => break (frame, at),
                Ok(Event::Broken(_) | Event::Rejoining(_) | Event::Note(_)) => continue,
                Ok(Event::Failed(e)) => return Err(e.into()),
                Ok(Event::Ended) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(SourceError::Ended);
                }
                Err(RecvTimeoutError::Timeout) => return Err(SourceError::Silent(JOIN_TIMEOUT)),
            }
        };
        let mut frames = Backlog::new(fps);
        let first_side = (*first.side).clone();
        frames.push(first, arrived);
        Ok(Self {
            events,
            first_side,
            frames,
            joined: arrived - started,
            notes: Vec::new(),
        })
    }

    /// Frames per second of the broadcast.
    pub fn fps(&self) -> f64 {
        self.frames.fps
    }

    /// Lines for the log since the last call (rendition switches).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Frames thrown away to catch up.
    pub fn skipped(&self) -> u64 {
        self.frames.skipped
    }

    /// The side data of the first GOP received: the scene's extent, for the initial view.
    pub fn first_side(&self) -> &GopSide {
        &self.first_side
    }

    /// Connect → first key frame complete.
    pub fn joined(&self) -> Duration {
        self.joined
    }

    /// The next frame, decoded; `Ok(None)` when none arrived within `wait`. A frame that cannot
    /// be decoded is an error and the source goes on at the next key frame.
    pub fn next_frame(&mut self, wait: Duration) -> Result<Option<LiveDecoded>, SourceError> {
        while let Ok(event) = self.events.try_recv() {
            self.take(event)?;
        }
        if self.frames.is_empty() {
            match self.events.recv_timeout(wait) {
                Ok(event) => self.take(event)?,
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => return Err(SourceError::Ended),
            }
        }
        self.frames.decode_next()
    }

    /// Drops everything before the newest key frame (the app was in the background): playing
    /// resumes at the broadcast's edge.
    pub fn resync(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            if let Event::Frame(frame, at) = event {
                self.frames.push(frame, at);
            }
        }
        self.frames.broken();
    }

    fn take(&mut self, event: Event) -> Result<(), SourceError> {
        match event {
            Event::Frame(frame, at) => self.frames.push(frame, at),
            Event::Broken(why) => {
                self.frames.broken();
                return Err(SourceError::Broken(why));
            }
            Event::Rejoining(why) => return Err(SourceError::Rejoining(why)),
            Event::Failed(e) => return Err(e.into()),
            Event::Note(line) => self.notes.push(line),
            Event::Ended if self.frames.is_empty() => return Err(SourceError::Ended),
            Event::Ended => {}
        }
        Ok(())
    }
}

/// The first failure the network thread reported, if any.
fn first_error(events: &Receiver<Event>) -> Option<SourceError> {
    events.try_iter().find_map(|e| match e {
        Event::Failed(e) => Some(e.into()),
        _ => None,
    })
}

/// The runtime of a viewer's network thread: two workers (QUIC, TLS and MoQ are light next to
/// decoding).
pub(crate) fn network_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// The network thread: connect, find the broadcast, subscribe, forward frames. When the relay
/// goes away it reconnects with backoff (for [`REJOIN_LOST`]); when the publisher goes away it
/// waits [`REJOIN_GONE`] for it to come back; either way playing goes on at the next key frame.
fn network(
    address: Address,
    trust: Trust,
    fps: Sender<Result<f64, NetError>>,
    events: Sender<Event>,
) {
    let runtime = match network_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = fps.send(Err(e.into()));
            return;
        }
    };
    runtime.block_on(async move {
        let join = || async {
            let (session, broadcast) = tokio::time::timeout(JOIN_TIMEOUT, watch(&address, &trust))
                .await
                .map_err(|_| NetError::NotSplatcast("the broadcast is not announced".into()))??;
            let early = Early::start(&broadcast);
            let catalog = StreamCatalog::read(&broadcast).await?;
            // A ladder: start at the lowest rendition (the fastest join), then let the
            // measurements decide.
            let rates: Vec<u64> = catalog.ladder.iter().map(|r| r.bits_per_second).collect();
            let abr = (rates.len() > 1).then(|| Abr::new(&rates, Instant::now()));
            let first = abr.as_ref().map_or(0, Abr::current);
            let subscription =
                subscribe_rendition(&broadcast, catalog, first, MAX_LAG, Some(early)).await?;
            Ok::<_, NetError>((
                session,
                Watching {
                    broadcast,
                    subscription,
                    abr,
                    rendition: first,
                    next: None,
                    last_group: 0,
                },
            ))
        };
        let (mut session, mut watching) = match join().await {
            Ok(joined) => joined,
            Err(e) => {
                let _ = fps.send(Err(e));
                return;
            }
        };
        if fps.send(Ok(watching.subscription.catalog.fps())).is_err() {
            return;
        }
        loop {
            let (why, give_up) = tokio::select! {
                item = watching.next() => {
                    let ended = matches!(item, Next::Ended);
                    let event = match item {
                        Next::Frame(frame) => {
                            if let Some(note) = watching.measure(&frame).await {
                                let _ = events.send(Event::Note(note));
                            }
                            Event::Frame(Box::new(frame), Instant::now())
                        }
                        Next::Switched(frame, name) => {
                            let _ = events.send(Event::Note(format!(
                                "switched to rendition '{name}'"
                            )));
                            Event::Frame(Box::new(frame), Instant::now())
                        }
                        Next::Broken(e) => Event::Broken(e.to_string()),
                        Next::Ended => {
                            Event::Rejoining("the publisher went away; waiting for it".into())
                        }
                    };
                    if events.send(event).is_err() {
                        return;
                    }
                    if !ended {
                        continue;
                    }
                    ("publisher gone", REJOIN_GONE)
                }
                err = session.closed() => {
                    if refused(&err) {
                        let _ = events.send(Event::Failed(err.into()));
                        return;
                    }
                    let _ = events.send(Event::Rejoining(format!(
                        "connection lost ({err}); reconnecting"
                    )));
                    ("connection lost", REJOIN_LOST)
                }
            };
            match with_backoff(give_up, join).await {
                Ok((s, w)) => {
                    bevy::log::info!("rejoined after {why}");
                    (session, watching) = (s, w);
                }
                Err(_) => {
                    let _ = events.send(Event::Ended);
                    return;
                }
            }
        }
    });
}

/// What a watched broadcast gave.
enum Next {
    Frame(LiveFrame),
    Switched(LiveFrame, String),
    Broken(NetError),
    Ended,
}

/// The next item of the subscription being switched to; pending when there is none.
async fn pending_next(
    next: &mut Option<(usize, Subscription<LiveFrame>)>,
) -> Option<Result<LiveFrame, NetError>> {
    match next {
        Some((_, sub)) => sub.next().await,
        None => std::future::pending().await,
    }
}

/// A subscription to one broadcast and, for a quality ladder, the rendition choice and the
/// subscription being switched to.
struct Watching {
    broadcast: splatcast_net::moq_net::broadcast::Consumer,
    subscription: Subscription<LiveFrame>,
    abr: Option<Abr>,
    /// The rendition of `subscription`.
    rendition: usize,
    /// The rendition asked for and its subscription, until it takes over.
    next: Option<(usize, Subscription<LiveFrame>)>,
    /// The last group the current subscription gave.
    last_group: u64,
}

impl Watching {
    /// Feeds a frame of the current rendition to the choice; a switch subscribes to the new
    /// rendition, which takes over at its next key frame ([`Watching::switched`]).
    async fn measure(&mut self, frame: &LiveFrame) -> Option<String> {
        self.last_group = self.last_group.max(frame.group);
        let fps = self.subscription.catalog.fps();
        let abr = self.abr.as_mut()?;
        let to = abr.frame(frame.bytes, Instant::now(), frame.frame as f64 / fps)?;
        let catalog = self.subscription.catalog.clone();
        if to == self.rendition {
            // Back before the switch was made (the probe's own data slowed the link).
            let (given_up, _) = self.next.take()?;
            return Some(format!(
                "gave up switching to rendition '{}'",
                catalog.ladder[given_up].name
            ));
        }
        match subscribe_rendition(&self.broadcast, catalog, to, MAX_LAG, None).await {
            Ok(sub) => {
                self.next = Some((to, sub));
                None
            }
            Err(e) => Some(format!("rendition {to}: {e}")),
        }
    }

    /// The next frame of the current rendition, or the new rendition's first key frame of a
    /// group after the current one's last: then the switch is made (the old subscription
    /// dropped) and the frame comes with the rendition's name.
    async fn next(&mut self) -> Next {
        loop {
            let Self {
                subscription,
                next,
                last_group,
                ..
            } = self;
            tokio::select! {
                item = subscription.next() => return match item {
                    Some(Ok(frame)) => Next::Frame(frame),
                    Some(Err(e)) => Next::Broken(e),
                    None => Next::Ended,
                },
                item = pending_next(next) => match item {
                    Some(Ok(frame)) if frame.index == 0 && frame.group > *last_group => {
                        let (to, new) = self.next.take().expect("polled above");
                        self.subscription = new;
                        self.rendition = to;
                        self.last_group = frame.group;
                        let name = self.subscription.catalog.ladder[to].name.clone();
                        return Next::Switched(frame, name);
                    }
                    Some(_) => {}
                    None => self.next = None,
                },
            }
        }
    }
}
