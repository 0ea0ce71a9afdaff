//! The sans-IO stream writer: a GOP of Gaussian frames in; the init segment (once), the GOP's
//! chunks and, at the end, the fragment index out. The file encoder writes the chunks to disk,
//! the live publisher sends each as a MoQ frame; neither drives the plane codec or the
//! container itself.

use std::collections::VecDeque;

use super::rate::RateControl;
use super::{FRAME_TICKS, Fragmentation, StreamLayout, split_by_frame};
use crate::av1::{
    CodecError, CodedGop, EncoderSettings, LiveGopEncoder, Picture, PlaneEncoder, Rav1eEncoder,
    per_track,
};
use crate::container::{
    Fragment, IndexEntry, Movie, Sample, fragment_index, init_segment, media_segment,
};
use crate::gaussian::GaussianFrame;
use crate::gop::{GopSide, GopStart, KeyframeCoding, PlaneSet, pack};

/// Why a GOP could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// AV1 encoding failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The frames do not fit the stream's layout.
    #[error("frame {frame}: {problem}")]
    Input {
        /// Index of the offending frame in the stream.
        frame: u64,
        /// What is wrong.
        problem: String,
    },
    /// [`StreamWriter::finish`] before any GOP.
    #[error("no frames were written")]
    Empty,
}

/// One piece of the stream, in writing order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The one track it carries, or `None` for a GOP fragment with every track.
    pub track: Option<u32>,
    /// Index in the stream of its first frame.
    pub frame: u64,
    /// `moof` + `mdat`.
    pub bytes: Vec<u8>,
}

/// What writing one GOP produced.
#[derive(Clone, Debug)]
pub struct WrittenGop {
    /// 0-based GOP number (the MoQ group sequence).
    pub index: u64,
    /// Index of its first frame.
    pub first_frame: u64,
    /// Frames in it.
    pub frames: usize,
    /// The init segment, with the first GOP only (the AV1 sequence headers exist once a GOP is
    /// coded).
    pub init: Option<Vec<u8>>,
    /// The GOP's chunks, in stream order.
    pub chunks: Vec<Chunk>,
    /// Compressed side-data bytes.
    pub side_bytes: usize,
    /// AV1 bytes per track, in track order.
    pub track_bytes: Vec<usize>,
    /// For each coded Gaussian, its index in the input frames (the order decoders return).
    pub coded_order: Vec<usize>,
}

/// Most of a GOP's budget its side data may take under a target bitrate.
const SIDE_SHARE: f64 = 0.5;

/// Codes each track's pictures with its settings; the tracks are independent AV1 streams, so
/// side by side.
fn code_planes(
    planes: &[PlaneSet],
    settings: &[EncoderSettings],
) -> Result<Vec<CodedGop>, CodecError> {
    per_track(
        planes.iter().zip(settings),
        |(planes, &s)| Rav1eEncoder::new(s).encode_gop(&planes.pictures),
        CodecError::Encoder,
    )
}

/// A GOP being written frame by frame: see [`StreamWriter::start_live`].
pub struct LiveGop {
    /// The side data, until the key frame's chunks carry it.
    side: Option<Vec<u8>>,
    declared: u32,
    encoders: Vec<LiveGopEncoder>,
    /// Per track, coded samples not yet released (a frame leaves once every track has it).
    packets: Vec<VecDeque<Vec<u8>>>,
    first_frame: u64,
    released: u64,
}

impl LiveGop {
    /// Frames released so far.
    pub fn frames(&self) -> u64 {
        self.released
    }
}

/// What a step of live writing produced.
#[derive(Clone, Debug, Default)]
pub struct LiveChunks {
    /// The init segment, before the stream's first chunk.
    pub init: Option<Vec<u8>>,
    /// Chunks now ready, in stream order.
    pub chunks: Vec<Chunk>,
}

/// Gaussian frames, a GOP at a time, to a fragmented MP4 byte stream.
pub struct StreamWriter {
    layout: StreamLayout,
    settings: Vec<EncoderSettings>,
    fragmentation: Fragmentation,
    refine_passes: usize,
    keyframes: KeyframeCoding,
    rate: Option<RateControl>,
    movie: Option<Movie>,
    position: u64,
    next_frame: u64,
    gops: u64,
    /// Per track, where each GOP starts.
    index: Vec<Vec<IndexEntry>>,
}

impl StreamWriter {
    /// A writer for `layout`, each AV1 track coded with its entry of `settings` (track order);
    /// `refine_passes` PLAS passes per radius sort each keyframe.
    pub fn new(
        layout: StreamLayout,
        settings: Vec<EncoderSettings>,
        fragmentation: Fragmentation,
        refine_passes: usize,
    ) -> Self {
        let tracks = layout.tracks.len() + 1;
        Self {
            layout,
            settings,
            fragmentation,
            refine_passes,
            keyframes: KeyframeCoding::Exact,
            rate: None,
            movie: None,
            position: 0,
            next_frame: 0,
            gops: 0,
            index: vec![Vec::new(); tracks],
        }
    }

    /// Codes every later GOP to take its share of `bits_per_second` — planes, side data and
    /// container together — instead of the settings' fixed quantizers, which become the
    /// starting point that one offset moves (see the rate module). GOPs written frame by frame
    /// ([`Self::start_live`]) keep the fixed quantizers.
    pub fn target_bitrate(mut self, bits_per_second: Option<u64>) -> Self {
        self.rate = bits_per_second.map(|b| RateControl::new(b, self.layout.fps));
        self
    }

    /// Codes the keyframe positions of every later GOP as `coding` says (exact by default).
    pub fn keyframe_coding(mut self, coding: KeyframeCoding) -> Self {
        self.keyframes = coding;
        self
    }

    /// Codes `frames` (same Gaussians in the same order in each, as the sequence encoder's
    /// correspondence leaves them) as one GOP.
    pub fn write_gop(
        &mut self,
        frames: &[GaussianFrame],
        start: GopStart,
        rematched: Vec<u32>,
    ) -> Result<WrittenGop, WriteError> {
        self.check(frames)?;
        let pack_with = |key| {
            pack(
                frames,
                self.layout.grid,
                &self.layout.tracks,
                self.refine_passes,
                key,
                start,
                rematched.clone(),
            )
        };
        let mut key = self.keyframes;
        let mut packed = pack_with(key)?;
        // Under a target bitrate the keyframe positions must fit too: while the side data
        // takes more than half the GOP's budget, code them coarser (the position track's
        // keyframe picture refines them).
        if let Some(rate) = &self.rate {
            let budget = rate.budget(frames.len());
            while packed.side.to_bytes().len() as f64 > SIDE_SHARE * budget {
                key = match key {
                    KeyframeCoding::Exact => KeyframeCoding::Layered {
                        quantizer: 24,
                        speed: 10,
                    },
                    KeyframeCoding::Layered { quantizer, speed } if quantizer < 255 => {
                        KeyframeCoding::Layered {
                            quantizer: quantizer.saturating_add(48),
                            speed,
                        }
                    }
                    KeyframeCoding::Layered { .. } => break,
                };
                packed = pack_with(key)?;
            }
        }
        self.write_planes(&packed.side, &packed.planes, packed.coded_order)
    }

    /// Codes and writes a GOP already turned into planes (one [`PlaneSet`] per track, in track
    /// order, `side.frame_count` pictures each): how an encoder that quantises each frame as it
    /// learns it, against a [`crate::gop::GopPlan`], hands over its GOPs.
    pub fn write_planes(
        &mut self,
        side: &GopSide,
        planes: &[PlaneSet],
        coded_order: Vec<usize>,
    ) -> Result<WrittenGop, WriteError> {
        if self.settings.len() != self.layout.tracks.len() || planes.len() != self.settings.len() {
            return Err(WriteError::Codec(CodecError::Format(format!(
                "{} encoder settings and {} plane sets for {} tracks",
                self.settings.len(),
                planes.len(),
                self.layout.tracks.len()
            ))));
        }
        let settings = &self.settings;
        let coded = match &mut self.rate {
            None => code_planes(planes, settings)?,
            Some(rate) => {
                let frames = side.frame_count as usize;
                let chunks = match self.fragmentation {
                    Fragmentation::Gop => 1,
                    Fragmentation::Frame => frames * planes.len() + 1,
                };
                let fixed = side.to_bytes().len();
                rate.code(frames, fixed, chunks, settings, |s| code_planes(planes, s))?
            }
        };
        let written = self.write_coded(side, coded, coded_order)?;
        if let Some(rate) = &mut self.rate {
            let bytes = written.chunks.iter().map(|c| c.bytes.len()).sum::<usize>()
                + written.init.as_ref().map_or(0, Vec::len);
            rate.spent(written.frames, bytes);
        }
        Ok(written)
    }

    /// Writes a coded GOP (one [`CodedGop`] per track, in track order, `side.frame_count`
    /// samples each).
    fn write_coded(
        &mut self,
        side: &GopSide,
        coded: Vec<CodedGop>,
        coded_order: Vec<usize>,
    ) -> Result<WrittenGop, WriteError> {
        let frames = side.frame_count as usize;
        let problem = |problem: String| WriteError::Input {
            frame: self.next_frame,
            problem,
        };
        if coded.len() != self.layout.tracks.len()
            || coded.iter().any(|c| c.samples.len() != frames)
        {
            return Err(problem(format!(
                "{} coded tracks for {} ({} frames each expected)",
                coded.len(),
                self.layout.tracks.len(),
                frames
            )));
        }
        if side.grid != self.layout.grid || side.sh_degree != self.layout.sh_degree {
            return Err(problem(
                "the GOP's grid or SH degree differs from the stream's".into(),
            ));
        }
        let init = match self.movie {
            Some(_) => None,
            None => {
                let headers: Vec<Vec<u8>> =
                    coded.iter().map(|c| c.sequence_header.clone()).collect();
                let movie = self.layout.movie(&headers);
                let bytes = init_segment(&movie);
                self.position += bytes.len() as u64;
                self.movie = Some(movie);
                Some(bytes)
            }
        };
        let first_frame = self.next_frame;
        let side = side.to_bytes();
        let side_bytes = side.len();
        let fragment = self
            .layout
            .fragment(self.gops as u32 + 1, first_frame, side, &coded);
        let base_time = fragment.base_time;
        let chunks: Vec<Chunk> = match self.fragmentation {
            Fragmentation::Gop => vec![Chunk {
                track: None,
                frame: first_frame,
                bytes: media_segment(&fragment),
            }],
            Fragmentation::Frame => split_by_frame(&fragment, self.layout.side_track_id())
                .into_iter()
                .map(|(track, frame, f)| Chunk {
                    track: Some(track),
                    frame,
                    bytes: media_segment(&f),
                })
                .collect(),
        };
        self.record(&chunks, base_time);
        self.next_frame += frames as u64;
        self.gops += 1;
        Ok(WrittenGop {
            index: self.gops - 1,
            first_frame,
            frames,
            init,
            chunks,
            side_bytes,
            track_bytes: coded
                .iter()
                .map(|c| c.samples.iter().map(Vec::len).sum())
                .collect(),
            coded_order,
        })
    }

    /// Accounts for `chunks` written at the end of the stream: the index entry of each track's
    /// first chunk among them (where a GOP starts: call with a GOP's first chunks), and the
    /// stream position.
    fn record(&mut self, chunks: &[Chunk], base_time: u64) {
        for (slot, entries) in self.index.iter_mut().enumerate() {
            let id = slot as u32 + 1;
            let mut offset = self.position;
            for chunk in chunks {
                if chunk.track.is_none_or(|t| t == id) {
                    let traf = if chunk.track.is_some() { 1 } else { id as u8 };
                    entries.push(IndexEntry {
                        time: base_time,
                        offset,
                        traf,
                    });
                    break;
                }
                offset += chunk.bytes.len() as u64;
            }
        }
        self.position += chunks.iter().map(|c| c.bytes.len() as u64).sum::<u64>();
    }

    /// Opens a GOP written frame by frame (live output): `side` is its side data, whose
    /// `frame_count` is the most frames it may take (it may end sooner: the next GOP's key
    /// frame tells a live reader so); `first` its key frame's pictures, one per track. Push the
    /// pictures of each frame with [`Self::push_live`], the key frame's first; close it with
    /// [`Self::finish_live`]. Every frame's chunks are exactly those a [`Fragmentation::Frame`]
    /// file of the same GOP holds, and leave as soon as AV1 has coded the frame on every track.
    pub fn start_live(&mut self, side: &GopSide, first: &[Picture]) -> Result<LiveGop, WriteError> {
        let problem = |problem: String| WriteError::Input {
            frame: self.next_frame,
            problem,
        };
        if first.len() != self.settings.len() {
            return Err(problem(format!(
                "{} pictures for {} tracks",
                first.len(),
                self.settings.len()
            )));
        }
        if side.grid != self.layout.grid || side.sh_degree != self.layout.sh_degree {
            return Err(problem(
                "the GOP's grid or SH degree differs from the stream's".into(),
            ));
        }
        let frames = side.frame_count as usize;
        let encoders = first
            .iter()
            .zip(&self.settings)
            .map(|(p, &s)| Rav1eEncoder::new(s).live_gop(p, frames))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LiveGop {
            side: Some(side.to_bytes()),
            declared: side.frame_count,
            packets: vec![VecDeque::new(); encoders.len()],
            encoders,
            first_frame: self.next_frame,
            released: 0,
        })
    }

    /// Codes one frame of a live GOP (one picture per track); returns the chunks now ready.
    pub fn push_live(
        &mut self,
        gop: &mut LiveGop,
        pictures: &[Picture],
    ) -> Result<LiveChunks, WriteError> {
        if pictures.len() != gop.encoders.len() {
            return Err(WriteError::Input {
                frame: gop.first_frame + gop.released,
                problem: format!(
                    "{} pictures for {} tracks",
                    pictures.len(),
                    gop.encoders.len()
                ),
            });
        }
        // The tracks are independent AV1 streams: code them side by side.
        let coded = per_track(
            gop.encoders.iter_mut().zip(pictures),
            |(encoder, picture)| encoder.push(picture),
            CodecError::Encoder,
        )?;
        for (queue, samples) in gop.packets.iter_mut().zip(coded) {
            queue.extend(samples);
        }
        self.release(gop)
    }

    /// Closes a live GOP: the chunks of its last frames.
    pub fn finish_live(&mut self, mut gop: LiveGop) -> Result<LiveChunks, WriteError> {
        for (encoder, queue) in gop.encoders.iter_mut().zip(&mut gop.packets) {
            queue.extend(encoder.finish()?);
        }
        let out = self.release(&mut gop)?;
        self.next_frame += gop.released;
        self.gops += 1;
        Ok(out)
    }

    /// Turns every frame coded on all tracks into chunks (the init segment before the first).
    fn release(&mut self, gop: &mut LiveGop) -> Result<LiveChunks, WriteError> {
        let mut out = LiveChunks::default();
        while gop.packets.iter().all(|q| !q.is_empty()) {
            if self.movie.is_none() {
                let headers = gop
                    .encoders
                    .iter()
                    .map(|e| e.sequence_header().map(<[u8]>::to_vec))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        CodecError::Encoder("key frame carries no sequence header".into())
                    })?;
                let movie = self.layout.movie(&headers);
                let bytes = init_segment(&movie);
                self.position += bytes.len() as u64;
                self.movie = Some(movie);
                out.init = Some(bytes);
            }
            let k = gop.released;
            let base_time = (gop.first_frame + k) * FRAME_TICKS as u64;
            let mut tracks: Vec<(u32, Vec<Sample>)> = gop
                .packets
                .iter_mut()
                .enumerate()
                .map(|(i, q)| {
                    let data = q.pop_front().expect("every queue holds a sample");
                    let sample = Sample {
                        data,
                        duration: FRAME_TICKS,
                        sync: k == 0,
                    };
                    (i as u32 + 1, vec![sample])
                })
                .collect();
            if let Some(side) = gop.side.take() {
                tracks.push((
                    self.layout.side_track_id(),
                    vec![Sample {
                        data: side,
                        duration: FRAME_TICKS * gop.declared,
                        sync: true,
                    }],
                ));
            }
            let fragment = Fragment {
                sequence: 0,
                base_time,
                tracks,
            };
            let chunks: Vec<Chunk> = split_by_frame(&fragment, self.layout.side_track_id())
                .into_iter()
                .map(|(track, frame, f)| Chunk {
                    track: Some(track),
                    frame,
                    bytes: media_segment(&f),
                })
                .collect();
            if k == 0 {
                self.record(&chunks, base_time);
            } else {
                self.position += chunks.iter().map(|c| c.bytes.len() as u64).sum::<u64>();
            }
            gop.released += 1;
            out.chunks.extend(chunks);
        }
        Ok(out)
    }

    fn check(&self, frames: &[GaussianFrame]) -> Result<(), WriteError> {
        let input = |k: usize, problem: String| WriteError::Input {
            frame: self.next_frame + k as u64,
            problem,
        };
        let Some(first) = frames.first() else {
            return Err(input(0, "a GOP needs at least one frame".into()));
        };
        for (k, f) in frames.iter().enumerate() {
            if f.sh_degree != self.layout.sh_degree {
                return Err(input(
                    k,
                    format!(
                        "SH degree {} differs from the stream's {}",
                        f.sh_degree, self.layout.sh_degree
                    ),
                ));
            }
            if f.is_empty() || f.len() > self.layout.grid.pixels() {
                return Err(input(
                    k,
                    format!(
                        "{} Gaussians do not fit the stream's {}-pixel planes",
                        f.len(),
                        self.layout.grid.pixels()
                    ),
                ));
            }
            if f.len() != first.len() {
                return Err(input(
                    k,
                    format!("{} Gaussians in a GOP of {}", f.len(), first.len()),
                ));
            }
        }
        Ok(())
    }

    /// The fragment index (`mfra`) that closes a file: per track, where each GOP starts.
    pub fn finish(self) -> Result<Vec<u8>, WriteError> {
        if self.movie.is_none() {
            return Err(WriteError::Empty);
        }
        let entries: Vec<(u32, Vec<IndexEntry>)> = self
            .index
            .into_iter()
            .enumerate()
            .map(|(slot, e)| (slot as u32 + 1, e))
            .collect();
        Ok(fragment_index(&entries))
    }
}
