//! Writing a Splatcast stream into a MoQ broadcast: the catalog once, then each chunk as one
//! frame of its track's group (one group per GOP, the same sequence on every track).

use std::time::Duration;

use moq_net::{Timestamp, broadcast, group, track};
use splatcast_protocol::container::{Movie, parse_fragment};
use splatcast_protocol::stream::{Chunk, split_by_frame};

use crate::{NetError, Rendition, StreamCatalog};

/// How long groups behind the newest stay fetchable from the publisher (media time).
const HISTORY: Duration = Duration::from_secs(30);

struct Track {
    rendition: usize,
    id: u32,
    producer: track::Producer,
    group: Option<group::Producer>,
}

/// The producing side of one broadcast.
pub struct BroadcastWriter {
    broadcast: broadcast::Producer,
    _catalog: track::Producer,
    tracks: Vec<Track>,
    /// The side-data track of each rendition.
    side_tracks: Vec<u32>,
    fps: f64,
}

impl BroadcastWriter {
    /// Publishes the catalog of a stream with this movie header, creates its tracks and
    /// announces the broadcast.
    pub fn new(broadcast: broadcast::Producer, movie: Movie) -> Result<Self, NetError> {
        Self::with_catalog(broadcast, StreamCatalog::new(movie))
    }

    /// The same for a quality ladder: every rendition's tracks in one broadcast (written with
    /// [`BroadcastWriter::write_rendition`], GOPs numbered alike in all of them).
    pub fn with_ladder(
        broadcast: broadcast::Producer,
        renditions: Vec<Rendition>,
    ) -> Result<Self, NetError> {
        Self::with_catalog(broadcast, StreamCatalog::with_ladder(renditions)?)
    }

    fn with_catalog(
        broadcast: broadcast::Producer,
        catalog: StreamCatalog,
    ) -> Result<Self, NetError> {
        let catalog_track = write_catalog(&broadcast, &catalog)?;
        let (mut tracks, mut side_tracks) = (Vec::new(), Vec::new());
        for k in 0..catalog.ladder.len().max(1) {
            let view = catalog
                .rendition(k)
                .expect("every rendition up to the count");
            let side = view.side_id()?;
            for (id, name) in &view.tracks {
                tracks.push(Track {
                    rendition: k,
                    id: *id,
                    producer: broadcast
                        .create_track(name.as_str(), track_info(*id, side, HISTORY))?,
                    group: None,
                });
            }
            side_tracks.push(side);
        }
        broadcast.announce(Default::default())?;
        Ok(Self {
            broadcast,
            _catalog: catalog_track,
            tracks,
            side_tracks,
            fps: catalog.fps(),
        })
    }

    /// Sends `chunk` as a frame of group `group` (the GOP number). A GOP-sized chunk with every
    /// track is split into per-frame chunks first, so subscribers see the same either way.
    pub fn write(&mut self, group: u64, chunk: &Chunk) -> Result<(), NetError> {
        self.write_rendition(0, group, chunk)
    }

    /// [`BroadcastWriter::write`] for rendition `rendition` of a ladder.
    pub fn write_rendition(
        &mut self,
        rendition: usize,
        group: u64,
        chunk: &Chunk,
    ) -> Result<(), NetError> {
        let side = *self.side_tracks.get(rendition).ok_or_else(|| {
            NetError::NotSplatcast(format!("rendition {rendition} does not exist"))
        })?;
        let Some(track) = chunk.track else {
            let fragment = parse_fragment(&chunk.bytes)?;
            for (track, frame, part) in split_by_frame(&fragment, side) {
                let bytes = splatcast_protocol::container::media_segment(&part);
                self.write_frame(rendition, group, track, frame, bytes)?;
            }
            return Ok(());
        };
        self.write_frame(rendition, group, track, chunk.frame, chunk.bytes.clone())
    }

    fn write_frame(
        &mut self,
        rendition: usize,
        group: u64,
        track: u32,
        frame: u64,
        bytes: Vec<u8>,
    ) -> Result<(), NetError> {
        let timestamp = frame_time(frame, self.fps)?;
        let t = self
            .tracks
            .iter_mut()
            .find(|t| t.id == track && t.rendition == rendition)
            .ok_or_else(|| NetError::NotSplatcast(format!("chunk of unknown track {track}")))?;
        if t.group.as_ref().is_none_or(|g| g.sequence != group) {
            if let Some(old) = t.group.take() {
                old.finish()?;
            }
            t.group = Some(t.producer.create_group(group::Info { sequence: group })?);
        }
        t.group
            .as_mut()
            .expect("set above")
            .write_frame(timestamp, bytes)?;
        Ok(())
    }

    /// Closes the open groups: the GOP is complete on every track.
    pub fn finish_group(&mut self) -> Result<(), NetError> {
        for t in &mut self.tracks {
            if let Some(g) = t.group.take() {
                g.finish()?;
            }
        }
        Ok(())
    }

    /// Ends the broadcast (subscribers see its tracks finish).
    pub fn finish(mut self) -> Result<(), NetError> {
        self.finish_group()?;
        for t in &self.tracks {
            t.producer.finish()?;
        }
        self.broadcast.unannounce();
        Ok(())
    }
}

/// Publishes `catalog` as the broadcast's `catalog.json` track (one group, one frame); the
/// track lives while the returned producer does.
pub(crate) fn write_catalog(
    broadcast: &broadcast::Producer,
    catalog: &StreamCatalog,
) -> Result<track::Producer, NetError> {
    let json = catalog.to_json()?;
    let track = broadcast.create_track(
        hang::Catalog::DEFAULT_NAME,
        hang::Catalog::default_track_info(),
    )?;
    let mut group = track.append_group()?;
    group.write_frame(Timestamp::ZERO, json)?;
    group.finish()?;
    Ok(track)
}

/// A media track's MoQ settings: side data first (nothing decodes without it), then planes in
/// track order; groups stay fetchable for `history` of media time.
pub(crate) fn track_info(id: u32, side_track: u32, history: Duration) -> track::Info {
    let priority = if id == side_track {
        90
    } else {
        80u8.saturating_sub(id as u8)
    };
    track::Info::default()
        .with_timescale(moq_net::Timescale::MICRO)
        .with_max_age(history)
        .with_priority(priority)
}

/// Frame `frame`'s time on the broadcast's clock at `fps`.
pub(crate) fn frame_time(frame: u64, fps: f64) -> Result<Timestamp, NetError> {
    let micros = (frame as f64 * 1e6 / fps.max(1e-3)).round() as u64;
    Timestamp::from_micros(micros)
        .map_err(|_| NetError::Refused(format!("frame {frame} is beyond MoQ time")))
}

impl StreamCatalog {
    /// ID of the side-data track.
    pub(crate) fn side_id(&self) -> Result<u32, NetError> {
        splatcast_protocol::stream::TrackSet::of(&self.movie)
            .map(|t| t.side)
            .map_err(NetError::from)
    }
}
