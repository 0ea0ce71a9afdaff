//! Serialising the init segment, fragments and the fragment index.

use super::boxes::BoxWriter;
use super::{Fragment, Movie, Track, TrackKind};

/// `sample_depends_on = 2`: a key frame.
const SYNC_FLAGS: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample = 1`.
const NON_SYNC_FLAGS: u32 = 0x0101_0000;
/// trun: data offset, then per-sample duration, size and flags.
const TRUN_FLAGS: u32 = 0x0000_0001 | 0x0000_0100 | 0x0000_0200 | 0x0000_0400;
/// tfhd: sample data offsets are relative to the enclosing moof.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;

/// `ftyp` + `moov`: everything a player needs before the first fragment.
pub fn init_segment(movie: &Movie) -> Vec<u8> {
    let mut w = BoxWriter::new();
    w.begin(b"ftyp").bytes(b"iso6").u32(0);
    for brand in [b"iso6", b"isom", b"av01", b"cmfc", b"mp41"] {
        w.bytes(brand);
    }
    w.end();
    w.begin(b"moov");
    w.begin_full(b"mvhd", 0, 0)
        .u32(0)
        .u32(0)
        .u32(movie.timescale)
        .u32(0)
        .u32(0x0001_0000)
        .u16(0x0100)
        .zeros(10)
        .unity_matrix()
        .zeros(24)
        .u32(movie.tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1)
        .end();
    for track in &movie.tracks {
        write_trak(&mut w, track, movie.timescale);
    }
    w.begin(b"mvex");
    for track in &movie.tracks {
        w.begin_full(b"trex", 0, 0)
            .u32(track.id)
            .u32(1)
            .u32(0)
            .u32(0)
            .u32(0)
            .end();
    }
    w.end().end();
    w.buf
}

fn write_trak(w: &mut BoxWriter, track: &Track, timescale: u32) {
    let (width, height) = match &track.kind {
        TrackKind::Av1 { width, height, .. } => (*width, *height),
        TrackKind::Metadata { .. } => (0, 0),
    };
    w.begin(b"trak");
    w.begin_full(b"tkhd", 0, 3)
        .u32(0)
        .u32(0)
        .u32(track.id)
        .u32(0)
        .u32(0)
        .zeros(8)
        .u16(0)
        .u16(0)
        .u16(0)
        .u16(0)
        .unity_matrix()
        .u32((width as u32) << 16)
        .u32((height as u32) << 16)
        .end();
    w.begin(b"mdia");
    w.begin_full(b"mdhd", 0, 0)
        .u32(0)
        .u32(0)
        .u32(timescale)
        .u32(0)
        .u16(0x55c4) // "und"
        .u16(0)
        .end();
    let handler = match track.kind {
        TrackKind::Av1 { .. } => b"vide",
        TrackKind::Metadata { .. } => b"meta",
    };
    w.begin_full(b"hdlr", 0, 0)
        .u32(0)
        .bytes(handler)
        .zeros(12)
        .cstr(&track.name)
        .end();
    w.begin(b"minf");
    match track.kind {
        TrackKind::Av1 { .. } => w.begin_full(b"vmhd", 0, 1).zeros(8).end(),
        TrackKind::Metadata { .. } => w.begin_full(b"nmhd", 0, 0).end(),
    };
    w.begin(b"dinf")
        .begin_full(b"dref", 0, 0)
        .u32(1)
        .begin_full(b"url ", 0, 1)
        .end()
        .end()
        .end();
    w.begin(b"stbl");
    w.begin_full(b"stsd", 0, 0).u32(1);
    write_sample_entry(w, &track.kind);
    w.end();
    w.begin_full(b"stts", 0, 0).u32(0).end();
    w.begin_full(b"stsc", 0, 0).u32(0).end();
    w.begin_full(b"stsz", 0, 0).u32(0).u32(0).end();
    w.begin_full(b"stco", 0, 0).u32(0).end();
    w.end().end().end().end();
}

fn write_sample_entry(w: &mut BoxWriter, kind: &TrackKind) {
    match kind {
        TrackKind::Av1 {
            width,
            height,
            bit_depth,
            sequence_header,
        } => {
            let mut compressor = [0u8; 32];
            let name = b"AV1 Splatcast";
            compressor[0] = name.len() as u8;
            compressor[1..=name.len()].copy_from_slice(name);
            w.begin(b"av01")
                .zeros(6)
                .u16(1)
                .zeros(16)
                .u16(*width)
                .u16(*height)
                .u32(0x0048_0000)
                .u32(0x0048_0000)
                .u32(0)
                .u16(1)
                .bytes(&compressor)
                .u16(0x0018)
                .u16(0xffff);
            // av1C: Main profile, level unspecified (31), monochrome 4:0:0.
            w.begin(b"av1C")
                .u8(0x81)
                .u8(31)
                .u8(((*bit_depth > 8) as u8) << 6 | 1 << 4 | 1 << 3 | 1 << 2)
                .u8(0)
                .bytes(sequence_header)
                .end();
            w.end();
        }
        TrackKind::Metadata { mime } => {
            w.begin(b"mett").zeros(6).u16(1).cstr("").cstr(mime).end();
        }
    }
}

/// `moof` + `mdat` for one fragment.
pub fn media_segment(fragment: &Fragment) -> Vec<u8> {
    let moof_len = moof(fragment, 0).len();
    let moof = moof(fragment, moof_len as u32 + 8);
    let payload: usize = fragment
        .tracks
        .iter()
        .flat_map(|(_, s)| s)
        .map(|s| s.data.len())
        .sum();
    let mut out = Vec::with_capacity(moof.len() + 8 + payload);
    out.extend_from_slice(&moof);
    out.extend_from_slice(&((payload + 8) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for sample in fragment.tracks.iter().flat_map(|(_, s)| s) {
        out.extend_from_slice(&sample.data);
    }
    out
}

/// The `moof`, with sample data starting `data_start` bytes after its first byte.
fn moof(fragment: &Fragment, data_start: u32) -> Vec<u8> {
    let mut w = BoxWriter::new();
    w.begin(b"moof");
    w.begin_full(b"mfhd", 0, 0).u32(fragment.sequence).end();
    let mut offset = data_start;
    for (id, samples) in &fragment.tracks {
        w.begin(b"traf");
        w.begin_full(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF)
            .u32(*id)
            .end();
        w.begin_full(b"tfdt", 1, 0).u64(fragment.base_time).end();
        w.begin_full(b"trun", 0, TRUN_FLAGS)
            .u32(samples.len() as u32)
            .u32(offset);
        for s in samples {
            w.u32(s.duration).u32(s.data.len() as u32).u32(if s.sync {
                SYNC_FLAGS
            } else {
                NON_SYNC_FLAGS
            });
            offset += s.data.len() as u32;
        }
        w.end().end();
    }
    w.end();
    w.buf
}

/// One random-access point of a track, for the `mfra` index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Decode time of the fragment's first sample, in timescale ticks.
    pub time: u64,
    /// File offset of its `moof`.
    pub offset: u64,
    /// 1-based position of the track's `traf` in that `moof`.
    pub traf: u8,
}

/// `mfra`: for each track ID, where each GOP starts, so other tools seek to any GOP without
/// scanning.
pub fn fragment_index(tracks: &[(u32, Vec<IndexEntry>)]) -> Vec<u8> {
    let mut w = BoxWriter::new();
    w.begin(b"mfra");
    for (id, entries) in tracks {
        w.begin_full(b"tfra", 1, 0)
            .u32(*id)
            .u32(0)
            .u32(entries.len() as u32);
        for e in entries {
            w.u64(e.time).u64(e.offset).u8(e.traf).u8(1).u8(1);
        }
        w.end();
    }
    let mfro_len = 16u32;
    let total = w.buf.len() as u32 + mfro_len;
    w.begin_full(b"mfro", 0, 0).u32(total).end();
    w.end();
    w.buf
}
