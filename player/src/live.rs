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
    Address, NetError, Trust, install_crypto, refused, subscribe_frames, watch, with_backoff,
};
use splatcast_protocol::av1::{Picture, PlaneDecoder, Rav1dDecoder};
use splatcast_protocol::gop::GopSide;
use splatcast_protocol::stream::LiveFrame;

use crate::source::SourceError;

/// How long to wait for the broadcast's first key frame.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Media time a viewer may trail a newer key frame before skipping ahead to it.
const MAX_LAG: Duration = Duration::from_millis(500);

/// How long a viewer tries to reconnect after losing the relay (a restart).
const REJOIN_LOST: Duration = Duration::from_secs(30);

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
    backlog: VecDeque<(Box<LiveFrame>, Instant)>,
    decoders: Vec<Box<dyn PlaneDecoder>>,
    fps: f64,
    first_side: GopSide,
    joined: Duration,
    need_key: bool,
    /// Frames thrown away to catch up.
    pub skipped: u64,
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
                Ok(Event::Broken(_) | Event::Rejoining(_)) => continue,
                Ok(Event::Failed(e)) => return Err(e.into()),
                Ok(Event::Ended) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(SourceError::Ended);
                }
                Err(RecvTimeoutError::Timeout) => return Err(SourceError::Silent(JOIN_TIMEOUT)),
            }
        };
        Ok(Self {
            events,
            first_side: (*first.side).clone(),
            backlog: VecDeque::from([(first, arrived)]),
            decoders: Vec::new(),
            fps,
            joined: arrived - started,
            need_key: false,
            skipped: 0,
        })
    }

    /// Frames per second of the broadcast.
    pub fn fps(&self) -> f64 {
        self.fps
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
        if self.backlog.is_empty() {
            match self.events.recv_timeout(wait) {
                Ok(event) => self.take(event)?,
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => return Err(SourceError::Ended),
            }
        }
        self.catch_up();
        let Some((frame, arrived)) = self.backlog.pop_front() else {
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

    /// Drops everything before the newest key frame (the app was in the background): playing
    /// resumes at the broadcast's edge.
    pub fn resync(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            if let Event::Frame(frame, at) = event {
                self.backlog.push_back((frame, at));
            }
        }
        self.need_key = true;
        self.catch_up();
    }

    fn take(&mut self, event: Event) -> Result<(), SourceError> {
        match event {
            Event::Frame(frame, at) => self.backlog.push_back((frame, at)),
            Event::Broken(why) => {
                self.need_key = true;
                return Err(SourceError::Broken(why));
            }
            Event::Rejoining(why) => return Err(SourceError::Rejoining(why)),
            Event::Failed(e) => return Err(e.into()),
            Event::Ended if self.backlog.is_empty() => return Err(SourceError::Ended),
            Event::Ended => {}
        }
        Ok(())
    }

    /// Drops what cannot or need not be shown: frames before the next key frame after an
    /// error, and a backlog longer than [`MAX_LAG`] when a newer key frame is in it.
    fn catch_up(&mut self) {
        let max = (MAX_LAG.as_secs_f64() * self.fps).ceil() as usize;
        let newest_key = self.backlog.iter().rposition(|(f, _)| f.index == 0);
        let drop = match newest_key {
            Some(k) if self.backlog.len() > max || self.need_key => k,
            None if self.need_key => self.backlog.len(),
            _ => 0,
        };
        if drop > 0 {
            self.skipped += drop as u64;
            self.backlog.drain(..drop);
        }
        if self.backlog.front().is_some_and(|(f, _)| f.index == 0) {
            self.need_key = false;
        }
    }
}

/// The first failure the network thread reported, if any.
fn first_error(events: &Receiver<Event>) -> Option<SourceError> {
    events.try_iter().find_map(|e| match e {
        Event::Failed(e) => Some(e.into()),
        _ => None,
    })
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
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
            Ok::<_, NetError>((session, subscribe_frames(broadcast, MAX_LAG).await?))
        };
        let (mut session, mut subscription) = match join().await {
            Ok(joined) => joined,
            Err(e) => {
                let _ = fps.send(Err(e));
                return;
            }
        };
        if fps.send(Ok(subscription.catalog.fps())).is_err() {
            return;
        }
        loop {
            let (why, give_up) = tokio::select! {
                item = subscription.next() => {
                    let ended = item.is_none();
                    let event = match item {
                        Some(Ok(frame)) => Event::Frame(Box::new(frame), Instant::now()),
                        Some(Err(e)) => Event::Broken(e.to_string()),
                        None => Event::Rejoining("the publisher went away; waiting for it".into()),
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
                Ok((s, sub)) => {
                    bevy::log::info!("rejoined after {why}");
                    (session, subscription) = (s, sub);
                }
                Err(_) => {
                    let _ = events.send(Event::Ended);
                    return;
                }
            }
        }
    });
}
