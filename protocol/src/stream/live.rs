//! Live playback frame by frame: per-frame chunks (one track each, as MoQ delivers them) in,
//! whole frames out — every plane track's sample of one frame and its GOP's side data — as soon
//! as the last of them arrives, so a viewer decodes a frame when it exists instead of waiting
//! for its GOP to end. Sans-IO: chunks in, frames out, in playing order.
//!
//! Live rules: playing starts at the newest GOP whose key frame is complete (a late joiner
//! starts at once); frames of a GOP are released in order; when a frame is missing and a newer
//! GOP's key frame has been waiting for `max_lag` frames of media time, the rest of the GOP is
//! given up and playing jumps to the newest key frame (a viewer that fell behind skips ahead
//! instead of buffering); at most `max_groups` GOPs are held.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{FRAME_TICKS, StreamError, TrackSet};
use crate::av1::{CodecError, Picture, PlaneDecoder, per_track};
use crate::container::parse_fragment;
use crate::gop::GopSide;

/// Frames held per track of a GOP whose side data has not arrived yet.
const MAX_UNDECLARED_FRAMES: usize = 4096;

/// One frame ready to decode.
#[derive(Clone, Debug)]
pub struct LiveFrame {
    /// Its GOP (MoQ group) number.
    pub group: u64,
    /// Its index within the GOP: 0 is the key frame.
    pub index: u32,
    /// Its frame number on the stream's timeline.
    pub frame: u64,
    /// The GOP's side data (shared by its frames).
    pub side: Arc<GopSide>,
    /// One coded sample per plane track, in [`TrackSet::video`] order.
    pub samples: Vec<Vec<u8>>,
    /// Coded bytes of the frame (with the side data on a key frame).
    pub bytes: usize,
}

impl LiveFrame {
    /// Decodes the frame with one decoder per plane track, side by side; each decoder keeps
    /// its track's GOP state between frames (the key frame resets it).
    pub fn decode(
        &self,
        decoders: &mut [Box<dyn PlaneDecoder>],
    ) -> Result<Vec<Picture>, StreamError> {
        if decoders.len() != self.samples.len() || self.side.tracks.len() != self.samples.len() {
            return Err(StreamError::Inconsistent(format!(
                "{} decoders, {} samples and {} tracks in the side data",
                decoders.len(),
                self.samples.len(),
                self.side.tracks.len()
            )));
        }
        let key = self.index == 0;
        Ok(per_track(
            decoders.iter_mut().zip(&self.samples),
            |(decoder, sample)| decoder.decode_frame(sample, key),
            CodecError::Decoder,
        )?)
    }
}

struct Group {
    side: Option<Arc<GopSide>>,
    side_bytes: usize,
    /// Per plane track, (frame number, sample) in arrival order (a MoQ group is one ordered
    /// stream per track).
    samples: Vec<Vec<(u64, Vec<u8>)>>,
}

impl Group {
    fn frame_count(&self) -> Option<u32> {
        self.side.as_ref().map(|s| s.frame_count)
    }

    fn ready(&self, index: u32) -> bool {
        self.frame_count().is_some_and(|n| index < n)
            && self.samples.iter().all(|s| s.len() > index as usize)
    }

    /// The newest frame number any track has delivered.
    fn newest_frame(&self) -> Option<u64> {
        self.samples
            .iter()
            .filter_map(|s| s.last().map(|(f, _)| *f))
            .max()
    }
}

/// Rebuilds frames from per-frame chunks; see the module documentation for the live rules.
pub struct FrameAssembler {
    tracks: TrackSet,
    groups: BTreeMap<u64, Group>,
    /// The GOP being played and the index of its next frame.
    cursor: Option<(u64, u32)>,
    max_lag: u64,
    max_groups: usize,
}

impl FrameAssembler {
    /// An assembler for `tracks` that skips ahead once a newer key frame has waited `max_lag`
    /// frames and holds at most `max_groups` GOPs.
    pub fn new(tracks: TrackSet, max_lag: u64, max_groups: usize) -> Self {
        Self {
            tracks,
            groups: BTreeMap::new(),
            cursor: None,
            max_lag: max_lag.max(1),
            max_groups: max_groups.max(2),
        }
    }

    /// Adds one chunk (`moof` + `mdat`) of group `group`; returns the frames it lets out, in
    /// playing order. Chunks of GOPs already played or given up are ignored.
    pub fn push(&mut self, group: u64, chunk: &[u8]) -> Result<Vec<LiveFrame>, StreamError> {
        let part = parse_fragment(chunk)?;
        if self.cursor.is_some_and(|(c, _)| group < c) {
            return Ok(Vec::new());
        }
        let tracks = &self.tracks;
        let entry = self.groups.entry(group).or_insert_with(|| Group {
            side: None,
            side_bytes: 0,
            samples: vec![Vec::new(); tracks.video.len()],
        });
        for (id, samples) in &part.tracks {
            if *id == tracks.side {
                if let Some(sample) = samples.first()
                    && entry.side.is_none()
                {
                    entry.side = Some(Arc::new(GopSide::from_bytes(&sample.data)?));
                    entry.side_bytes = sample.data.len();
                }
                continue;
            }
            let Some(slot) = tracks.video.iter().position(|v| v == id) else {
                return Err(StreamError::Inconsistent(format!(
                    "group {group}: a chunk of unknown track {id}"
                )));
            };
            let limit = entry
                .frame_count()
                .map_or(MAX_UNDECLARED_FRAMES, |n| n as usize);
            let mut time = part.base_time;
            for sample in samples {
                if entry.samples[slot].len() >= limit {
                    return Err(StreamError::Inconsistent(format!(
                        "group {group}: track {id} sends more frames than its GOP has"
                    )));
                }
                entry.samples[slot].push((time / FRAME_TICKS as u64, sample.data.clone()));
                time += sample.duration as u64;
            }
        }
        let mut out = Vec::new();
        self.release(&mut out);
        // Bound memory: the oldest GOPs go (the one being played last of all).
        while self.groups.len() > self.max_groups {
            let playing = self.cursor.map(|(c, _)| c);
            let oldest = self
                .groups
                .keys()
                .copied()
                .find(|&g| Some(g) != playing)
                .expect("more than one group");
            self.groups.remove(&oldest);
            self.release(&mut out);
        }
        Ok(out)
    }

    /// The newest group at or after `from` whose key frame is complete.
    fn newest_ready(&self, from: u64) -> Option<u64> {
        self.groups
            .range(from..)
            .rev()
            .find(|(_, g)| g.ready(0))
            .map(|(&g, _)| g)
    }

    fn jump_to(&mut self, group: u64) {
        self.groups = self.groups.split_off(&group);
        self.cursor = Some((group, 0));
    }

    fn release(&mut self, out: &mut Vec<LiveFrame>) {
        loop {
            let Some((c, k)) = self.cursor else {
                match self.newest_ready(0) {
                    Some(g) => self.jump_to(g),
                    None => return,
                }
                continue;
            };
            if let Some(group) = self.groups.get_mut(&c)
                && group.ready(k)
            {
                let side = group.side.clone().expect("ready");
                let samples: Vec<Vec<u8>> = group
                    .samples
                    .iter_mut()
                    .map(|s| std::mem::take(&mut s[k as usize].1))
                    .collect();
                let bytes = samples.iter().map(Vec::len).sum::<usize>()
                    + if k == 0 { group.side_bytes } else { 0 };
                out.push(LiveFrame {
                    group: c,
                    index: k,
                    frame: group.samples[0][k as usize].0,
                    side,
                    samples,
                    bytes,
                });
                if k + 1 >= group.frame_count().unwrap_or(0) {
                    self.groups.remove(&c);
                    self.cursor = Some((c + 1, 0));
                } else {
                    self.cursor = Some((c, k + 1));
                }
                continue;
            }
            // Waiting for (c, k). Skip ahead once a newer key frame has waited long enough,
            // or at once when the GOP being waited for has not been seen at all.
            let Some(newer) = self.newest_ready(c + 1) else {
                return;
            };
            let waiting_for = self.groups.get(&c).and_then(|g| {
                g.samples
                    .iter()
                    .find_map(|s| s.first().map(|(f, _)| f + k as u64))
            });
            // A live encoder may close a GOP before the length its side data declared (a
            // frame it cannot code in it): the next GOP then starts at the frame waited for.
            if let (Some(w), Some(next)) = (waiting_for, self.groups.get(&(c + 1)))
                && next.ready(0)
                && next
                    .samples
                    .first()
                    .and_then(|s| s.first())
                    .is_some_and(|(f, _)| *f <= w)
            {
                self.jump_to(c + 1);
                continue;
            }
            let newest = self
                .groups
                .range(c + 1..)
                .filter_map(|(_, g)| g.newest_frame())
                .max()
                .unwrap_or(0);
            match waiting_for {
                Some(w) if newest.saturating_sub(w) < self.max_lag => return,
                _ => self.jump_to(newer),
            }
        }
    }
}
