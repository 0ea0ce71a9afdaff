//! A stream's tracks as the decoder sees them: which track carries side data, which carry
//! planes, and how one GOP's joined fragment turns into decoded planes. Shared by the file reader
//! and the network assembler, so a GOP decodes the same way whatever brought it.

use std::collections::BTreeMap;

use super::{FRAME_TICKS, SIDE_DATA_MIME, StreamError};
use crate::av1::{CodecError, Picture, PlaneDecoder, per_track};
use crate::container::{Fragment, Movie, TrackKind, parse_fragment};
use crate::gop::GopSide;

/// The side-data track and the AV1 plane tracks of a movie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackSet {
    /// Track ID of the side data.
    pub side: u32,
    /// Track IDs of the planes, in track order.
    pub video: Vec<u32>,
}

/// One GOP's decoded planes: first frame, side data, per track one picture per frame.
pub type GopPlanes = (u64, GopSide, Vec<Vec<Picture>>);

impl TrackSet {
    /// Our tracks in `movie`, refused when it has no side-data track.
    pub fn of(movie: &Movie) -> Result<Self, StreamError> {
        let side = movie
            .tracks
            .iter()
            .find(|t| matches!(&t.kind, TrackKind::Metadata { mime } if mime == SIDE_DATA_MIME))
            .map(|t| t.id)
            .ok_or_else(|| {
                StreamError::Inconsistent("not a Splatcast stream: no side-data track".into())
            })?;
        let video = movie
            .tracks
            .iter()
            .filter(|t| matches!(t.kind, TrackKind::Av1 { .. }))
            .map(|t| t.id)
            .collect();
        Ok(Self { side, video })
    }

    /// The side data of a GOP's fragment.
    pub fn side_of(&self, fragment: &Fragment) -> Result<GopSide, StreamError> {
        let sample = fragment
            .samples(self.side)
            .and_then(|s| s.first())
            .ok_or_else(|| StreamError::Inconsistent("GOP without side data".into()))?;
        Ok(GopSide::from_bytes(&sample.data)?)
    }

    /// The side data, checked against the track count.
    /// The GOP's side data, checked against the tracks. A live encoder may close a GOP before
    /// the length its side data declared (the next key frame came sooner): when every track
    /// holds the same smaller number of frames, the side data is read as that many.
    pub(crate) fn checked_side(&self, fragment: &Fragment) -> Result<GopSide, StreamError> {
        let mut side = self.side_of(fragment)?;
        if side.tracks.len() != self.video.len() {
            return Err(StreamError::Inconsistent(
                "side data and tracks disagree".into(),
            ));
        }
        let counts: Vec<usize> = self
            .video
            .iter()
            .map(|&id| fragment.samples(id).map_or(0, <[_]>::len))
            .collect();
        if let Some(&n) = counts.first()
            && n > 0
            && n < side.frame_count as usize
            && counts.iter().all(|&c| c == n)
        {
            side.frame_count = n as u32;
            side.rematched.truncate(n);
        }
        Ok(side)
    }

    /// Per plane track, the coded samples of the GOP.
    pub fn track_samples<'f>(
        &self,
        fragment: &'f Fragment,
    ) -> Result<Vec<Vec<&'f [u8]>>, StreamError> {
        self.video
            .iter()
            .map(|&id| {
                let samples = fragment
                    .samples(id)
                    .ok_or_else(|| StreamError::Inconsistent(format!("GOP lacks track {id}")))?;
                Ok(samples.iter().map(|s| s.data.as_slice()).collect())
            })
            .collect()
    }

    /// Decodes a GOP's planes with one decoder for every track.
    pub fn decode(
        &self,
        fragment: &Fragment,
        decoder: &mut dyn PlaneDecoder,
    ) -> Result<GopPlanes, StreamError> {
        let side = self.checked_side(fragment)?;
        let planes = self
            .track_samples(fragment)?
            .iter()
            .map(|refs| decoder.decode_gop(refs))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((fragment.base_time / FRAME_TICKS as u64, side, planes))
    }

    /// Decodes a GOP's planes with one decoder per track, each on its own thread: the tracks
    /// are independent AV1 streams, so a GOP takes the time of its slowest track.
    pub fn decode_parallel(
        &self,
        fragment: &Fragment,
        decoders: &mut [Box<dyn PlaneDecoder>],
    ) -> Result<GopPlanes, StreamError> {
        let side = self.checked_side(fragment)?;
        if decoders.len() != side.tracks.len() {
            return Err(StreamError::Inconsistent(format!(
                "{} decoders for {} tracks",
                decoders.len(),
                side.tracks.len()
            )));
        }
        let coded = self.track_samples(fragment)?;
        let planes = per_track(
            decoders.iter_mut().zip(&coded),
            |(decoder, refs)| decoder.decode_gop(refs),
            CodecError::Decoder,
        )?;
        Ok((fragment.base_time / FRAME_TICKS as u64, side, planes))
    }
}

/// Appends `part`'s samples to `gop`, track by track (a GOP split over several fragments).
pub(super) fn join(gop: &mut Fragment, part: Fragment) {
    for (id, samples) in part.tracks {
        match gop.tracks.iter_mut().find(|(t, _)| *t == id) {
            Some((_, have)) => have.extend(samples),
            None => gop.tracks.push((id, samples)),
        }
    }
}

/// Rebuilds whole GOPs from chunks that arrive one at a time and interleaved across tracks and
/// groups (MoQ delivers each track, and each group, on its own stream). Sans-IO: chunks in,
/// GOPs out, in group order. Live rules: once a GOP is complete, older ones still incomplete are
/// given up; before the first GOP is out, any GOP older than the newest whose side data came is
/// given up (a late joiner starts at the newest keyframe at once); at most `max_pending` GOPs
/// stay open.
pub struct GopAssembler {
    tracks: TrackSet,
    pending: BTreeMap<u64, Pending>,
    max_pending: usize,
    released: Option<u64>,
}

struct Pending {
    fragment: Option<Fragment>,
    frames: Option<u32>,
    bytes: usize,
}

/// A GOP put back together.
#[derive(Clone, Debug)]
pub struct AssembledGop {
    /// Its group number.
    pub group: u64,
    /// Every track's samples joined into one fragment.
    pub fragment: Fragment,
    /// Coded bytes received for it.
    pub bytes: usize,
}

impl GopAssembler {
    /// An assembler for `tracks` holding at most `max_pending` open GOPs.
    pub fn new(tracks: TrackSet, max_pending: usize) -> Self {
        Self {
            tracks,
            pending: BTreeMap::new(),
            max_pending: max_pending.max(1),
            released: None,
        }
    }

    /// Groups given up or released so far end below this one.
    pub fn next_group(&self) -> u64 {
        self.released.map_or(0, |g| g + 1)
    }

    /// Adds one chunk (`moof` + `mdat`) of group `group`; returns the GOPs it lets out, oldest
    /// first. Chunks of GOPs already released or given up are ignored.
    pub fn push(&mut self, group: u64, chunk: &[u8]) -> Result<Vec<AssembledGop>, StreamError> {
        let part = parse_fragment(chunk)?;
        if group < self.next_group() {
            return Ok(Vec::new());
        }
        let frames = match part.samples(self.tracks.side).and_then(|s| s.first()) {
            Some(sample) => Some(GopSide::from_bytes(&sample.data)?.frame_count),
            None => None,
        };
        let entry = self.pending.entry(group).or_insert(Pending {
            fragment: None,
            frames: None,
            bytes: 0,
        });
        entry.bytes += chunk.len();
        entry.frames = entry.frames.or(frames);
        match &mut entry.fragment {
            None => entry.fragment = Some(part),
            Some(gop) => {
                // The GOP starts at its earliest sample, whichever track arrived first.
                gop.base_time = gop.base_time.min(part.base_time);
                join(gop, part);
            }
        }
        if self.released.is_none() {
            // Joining: a GOP whose side data shows a newer GOP has begun is not worth waiting
            // for (side data travels first, at the highest priority).
            let newest_started = self
                .pending
                .iter()
                .rev()
                .find(|(_, gop)| gop.frames.is_some())
                .map(|(&g, _)| g);
            if let Some(newest) = newest_started {
                self.pending = self.pending.split_off(&newest);
            }
        }
        let mut out = Vec::new();
        loop {
            self.release(&mut out);
            if self.pending.len() <= self.max_pending {
                return Ok(out);
            }
            // Too many open: give up the oldest (it cannot be complete, or it was released).
            if let Some((&oldest, _)) = self.pending.iter().next() {
                self.pending.remove(&oldest);
                self.released = Some(oldest);
            }
        }
    }

    /// Releases every complete GOP up to the newest complete one, oldest first, giving up the
    /// incomplete ones in between.
    fn release(&mut self, out: &mut Vec<AssembledGop>) {
        let complete = |gop: &Pending| {
            gop.frames.is_some_and(|n| {
                gop.fragment.as_ref().is_some_and(|f| {
                    self.tracks
                        .video
                        .iter()
                        .all(|&id| f.samples(id).is_some_and(|s| s.len() >= n as usize))
                })
            })
        };
        let Some(newest) = self
            .pending
            .iter()
            .rev()
            .find(|(_, gop)| complete(gop))
            .map(|(&g, _)| g)
        else {
            return;
        };
        let rest = self.pending.split_off(&(newest + 1));
        for (group, gop) in std::mem::replace(&mut self.pending, rest) {
            if complete(&gop) {
                // Frames of a track arrive in order (one MoQ group is one ordered stream).
                out.push(AssembledGop {
                    group,
                    fragment: gop.fragment.expect("complete"),
                    bytes: gop.bytes,
                });
            }
        }
        self.released = Some(newest);
    }
}
