//! Parsing init segments and fragments (sans-IO), and a seeking reader over files.

use std::io::{Read, Seek, SeekFrom};

use super::boxes::{Fields, child, children, header};
use super::{ContainerError, Fragment, Movie, Sample, Track, TrackKind};

/// Largest box we load into memory (a GOP fragment of a huge scene stays far below).
const MAX_BOX: u64 = 1 << 30;

/// Parses `ftyp` + `moov` (the bytes before the first fragment).
pub fn parse_init(data: &[u8]) -> Result<Movie, ContainerError> {
    let boxes = children(data)?;
    let moov = boxes
        .iter()
        .find(|b| &b.kind == b"moov")
        .ok_or_else(|| ContainerError::Malformed("no moov box".into()))?
        .body;
    let mut tracks = Vec::new();
    let mut timescale = 0;
    for trak in children(moov)?.into_iter().filter(|b| &b.kind == b"trak") {
        let mut tkhd = Fields::new(child(trak.body, b"tkhd")?);
        let version = tkhd.u8()?;
        tkhd.take(3 + if version == 1 { 16 } else { 8 })?;
        let id = tkhd.u32()?;
        let mdia = child(trak.body, b"mdia")?;
        let mut mdhd = Fields::new(child(mdia, b"mdhd")?);
        let version = mdhd.u8()?;
        mdhd.take(3 + if version == 1 { 16 } else { 8 })?;
        timescale = mdhd.u32()?;
        let mut hdlr = Fields::new(child(mdia, b"hdlr")?);
        hdlr.take(8)?;
        let handler = hdlr.take(4)?.to_vec();
        hdlr.take(12)?;
        let name = hdlr.cstr();
        let stsd = child(child(child(mdia, b"minf")?, b"stbl")?, b"stsd")?;
        let entries = children(
            stsd.get(8..)
                .ok_or_else(|| ContainerError::Malformed("stsd".into()))?,
        )?;
        let entry = entries
            .first()
            .ok_or_else(|| ContainerError::Malformed("empty stsd".into()))?;
        let kind = match (&handler[..], &entry.kind) {
            (b"vide", b"av01") => parse_av01(entry.body)?,
            (b"meta", b"mett") => {
                let mut f = Fields::new(entry.body);
                f.take(8)?;
                let _encoding = f.cstr();
                TrackKind::Metadata { mime: f.cstr() }
            }
            _ => continue,
        };
        tracks.push(Track { id, name, kind });
    }
    Ok(Movie { timescale, tracks })
}

fn parse_av01(body: &[u8]) -> Result<TrackKind, ContainerError> {
    let mut f = Fields::new(body);
    f.take(24)?;
    let width = f.u16()?;
    let height = f.u16()?;
    f.take(50)?;
    let av1c = child(f.rest(), b"av1C")?;
    let mut c = Fields::new(av1c);
    c.take(2)?;
    let flags = c.u8()?;
    c.take(1)?;
    Ok(TrackKind::Av1 {
        width,
        height,
        bit_depth: if flags & 0x40 != 0 { 10 } else { 8 },
        sequence_header: c.rest().to_vec(),
    })
}

/// The body of the `moof` at the start of `data`, and where the `moof` ends.
fn moof_body(data: &[u8]) -> Result<(&[u8], usize), ContainerError> {
    let (kind, header_len, size) = header(data)?;
    if &kind != b"moof" {
        return Err(ContainerError::Malformed(
            "fragment does not start with moof".into(),
        ));
    }
    let moof_end = usize::try_from(size)
        .ok()
        .filter(|&e| e <= data.len())
        .ok_or_else(|| ContainerError::Truncated("moof".into()))?;
    Ok((&data[header_len..moof_end], moof_end))
}

/// A `traf`'s base media decode time (`tfdt`), when it has one.
fn decode_time(traf: &[u8]) -> Result<Option<u64>, ContainerError> {
    let Ok(tfdt) = child(traf, b"tfdt") else {
        return Ok(None);
    };
    let mut f = Fields::new(tfdt);
    let version = f.u8()?;
    f.take(3)?;
    Ok(Some(if version == 1 {
        f.u64()?
    } else {
        f.u32()? as u64
    }))
}

/// Parses one `moof` + `mdat` pair (the bytes starting at the `moof`).
pub fn parse_fragment(data: &[u8]) -> Result<Fragment, ContainerError> {
    let (moof, moof_end) = moof_body(data)?;
    let mut mfhd = Fields::new(child(moof, b"mfhd")?);
    mfhd.take(4)?;
    let sequence = mfhd.u32()?;
    let mut base_time = 0;
    let mut tracks = Vec::new();
    // Legitimate fragments never reference the same bytes twice: bound what we copy.
    let mut copied = 0usize;
    for traf in children(moof)?.into_iter().filter(|b| &b.kind == b"traf") {
        let mut tfhd = Fields::new(child(traf.body, b"tfhd")?);
        let flags = tfhd.u32()? & 0xff_ffff;
        let id = tfhd.u32()?;
        let mut base = 0u64;
        if flags & 0x1 != 0 {
            base = tfhd.u64()?;
        }
        if flags & 0x2 != 0 {
            tfhd.u32()?;
        }
        let default_duration = if flags & 0x8 != 0 { tfhd.u32()? } else { 0 };
        let default_size = if flags & 0x10 != 0 { tfhd.u32()? } else { 0 };
        if let Some(t) = decode_time(traf.body)? {
            base_time = t;
        }
        let mut samples = Vec::new();
        for trun in children(traf.body)?
            .into_iter()
            .filter(|b| &b.kind == b"trun")
        {
            let mut f = Fields::new(trun.body);
            let tflags = f.u32()? & 0xff_ffff;
            let count = f.u32()? as usize;
            let mut offset = if tflags & 0x1 != 0 {
                f.u32()? as i32 as i64
            } else {
                0
            };
            if tflags & 0x4 != 0 {
                f.u32()?;
            }
            let per_sample = [0x100, 0x200, 0x400, 0x800]
                .iter()
                .filter(|&&b| tflags & b != 0)
                .count()
                * 4;
            // Each sample takes trun bytes or fragment bytes; without per-sample fields the count
            // is bounded by the fragment's size (a fuzzer found the unchecked reservation).
            if count.saturating_mul(per_sample) > f.rest().len() || count > data.len() {
                return Err(ContainerError::Malformed(
                    "trun sample count exceeds its box".into(),
                ));
            }
            samples.reserve(count);
            for _ in 0..count {
                let duration = if tflags & 0x100 != 0 {
                    f.u32()?
                } else {
                    default_duration
                };
                let len = if tflags & 0x200 != 0 {
                    f.u32()?
                } else {
                    default_size
                } as i64;
                let sflags = if tflags & 0x400 != 0 { f.u32()? } else { 0 };
                if tflags & 0x800 != 0 {
                    f.u32()?;
                }
                let start = base as i64 + offset;
                let range = usize::try_from(start)
                    .ok()
                    .zip(usize::try_from(start + len).ok())
                    .filter(|(s, e)| *s >= moof_end && e <= &data.len())
                    .ok_or_else(|| {
                        ContainerError::Truncated("sample data outside the fragment".into())
                    })?;
                copied += range.1 - range.0;
                if copied > data.len() {
                    return Err(ContainerError::Malformed("samples overlap".into()));
                }
                samples.push(Sample {
                    data: data[range.0..range.1].to_vec(),
                    duration,
                    sync: sflags & 0x0001_0000 == 0,
                });
                offset += len;
            }
        }
        tracks.push((id, samples));
    }
    Ok(Fragment {
        sequence,
        base_time,
        tracks,
    })
}

/// Where a fragment sits in time, read from its `moof` alone: the decode time of its first
/// sample and each track's sample count. Indexing a long file needs only this, not the samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentSpan {
    /// Decode time of the first sample, in timescale ticks.
    pub base_time: u64,
    /// Samples per track ID, in track order.
    pub samples: Vec<(u32, u32)>,
}

/// Parses the `moof` at the start of `data` (what follows it is not read).
pub fn parse_fragment_span(data: &[u8]) -> Result<FragmentSpan, ContainerError> {
    let (moof, _) = moof_body(data)?;
    let mut base_time = 0;
    let mut samples = Vec::new();
    for traf in children(moof)?.into_iter().filter(|b| &b.kind == b"traf") {
        let mut tfhd = Fields::new(child(traf.body, b"tfhd")?);
        tfhd.u32()?;
        let id = tfhd.u32()?;
        if let Some(t) = decode_time(traf.body)? {
            base_time = t;
        }
        let mut count = 0u32;
        for trun in children(traf.body)?
            .into_iter()
            .filter(|b| &b.kind == b"trun")
        {
            let mut f = Fields::new(trun.body);
            f.u32()?;
            count = count.saturating_add(f.u32()?);
        }
        samples.push((id, count));
    }
    Ok(FragmentSpan { base_time, samples })
}

/// Where a fragment lives in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentEntry {
    /// Offset of its `moof`.
    pub offset: u64,
    /// Length of `moof` + `mdat`.
    pub length: u64,
}

/// Random access to the fragments of a file, indexed by walking box headers (16 bytes read per
/// box, never sample data). A trailing `mfra` is for other tools: frame-fragmented files list
/// only GOP starts there, and walking a file's headers costs about as much as checking them.
pub struct Mp4Reader<R> {
    inner: R,
    /// The movie header.
    pub movie: Movie,
    /// Every complete fragment, in file order.
    pub fragments: Vec<FragmentEntry>,
    /// True when the file ends inside a box (a recording cut short); the fragments before it
    /// are still usable.
    pub truncated: bool,
    /// True when a fragment index (`mfra`) closes the file: its writer finished it.
    pub finished: bool,
}

impl<R: Read + Seek> Mp4Reader<R> {
    /// Reads the header and builds the fragment index.
    pub fn open(mut inner: R) -> Result<Self, ContainerError> {
        let file_len = inner.seek(SeekFrom::End(0))?;
        let mut pos = 0u64;
        let mut init = Vec::new();
        let mut fragments = Vec::new();
        let mut truncated = false;
        let mut finished = false;
        let mut movie = None;
        while pos < file_len {
            let Some((kind, size)) = box_at(&mut inner, pos, file_len)? else {
                truncated = true;
                break;
            };
            match &kind {
                b"ftyp" | b"moov" => {
                    if size > MAX_BOX {
                        return Err(ContainerError::Unsupported("oversized header box".into()));
                    }
                    let mut b = vec![0; size as usize];
                    inner.seek(SeekFrom::Start(pos))?;
                    inner.read_exact(&mut b)?;
                    init.extend_from_slice(&b);
                    if &kind == b"moov" {
                        movie = Some(parse_init(&init)?);
                    }
                }
                b"moof" => {
                    let mdat_pos = pos + size;
                    match box_at(&mut inner, mdat_pos, file_len)? {
                        Some((k, mdat_size)) if &k == b"mdat" => {
                            fragments.push(FragmentEntry {
                                offset: pos,
                                length: size + mdat_size,
                            });
                            pos = mdat_pos + mdat_size;
                            continue;
                        }
                        Some(_) => {
                            return Err(ContainerError::Malformed("moof without mdat".into()));
                        }
                        None => {
                            truncated = true;
                            break;
                        }
                    }
                }
                b"mfra" => {
                    finished = true;
                    break;
                }
                _ => {}
            }
            pos += size;
        }
        let movie = movie.ok_or_else(|| ContainerError::Malformed("no moov box".into()))?;
        Ok(Self {
            inner,
            movie,
            fragments,
            truncated,
            finished,
        })
    }

    /// Reads and parses fragment `index`.
    pub fn fragment(&mut self, index: usize) -> Result<Fragment, ContainerError> {
        let entry = *self
            .fragments
            .get(index)
            .ok_or_else(|| ContainerError::Malformed(format!("no fragment {index}")))?;
        if entry.length > MAX_BOX {
            return Err(ContainerError::Unsupported("oversized fragment".into()));
        }
        let mut data = vec![0; entry.length as usize];
        self.inner.seek(SeekFrom::Start(entry.offset))?;
        self.inner.read_exact(&mut data)?;
        parse_fragment(&data)
    }

    /// Reads fragment `index`'s `moof` only and parses its span.
    pub fn fragment_span(&mut self, index: usize) -> Result<FragmentSpan, ContainerError> {
        let entry = *self
            .fragments
            .get(index)
            .ok_or_else(|| ContainerError::Malformed(format!("no fragment {index}")))?;
        let mut head = [0u8; 16];
        let n = entry.length.min(16) as usize;
        self.inner.seek(SeekFrom::Start(entry.offset))?;
        self.inner.read_exact(&mut head[..n])?;
        let (_, _, size) = header(&head[..n])?;
        if size > entry.length || size > MAX_BOX {
            return Err(ContainerError::Malformed(
                "moof larger than its fragment".into(),
            ));
        }
        let mut moof = vec![0; size as usize];
        self.inner.seek(SeekFrom::Start(entry.offset))?;
        self.inner.read_exact(&mut moof)?;
        parse_fragment_span(&moof)
    }
}

/// Type and size of the box at `pos`, or `None` if it runs past the end of the file.
fn box_at<R: Read + Seek>(
    r: &mut R,
    pos: u64,
    file_len: u64,
) -> Result<Option<([u8; 4], u64)>, ContainerError> {
    if file_len.saturating_sub(pos) < 8 {
        return Ok(None);
    }
    let mut head = [0u8; 16];
    let n = (file_len - pos).min(16) as usize;
    r.seek(SeekFrom::Start(pos))?;
    r.read_exact(&mut head[..n])?;
    let (kind, _, size) = match header(&head[..n]) {
        Ok(h) => h,
        Err(ContainerError::Truncated(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(pos
        .checked_add(size)
        .is_some_and(|end| end <= file_len)
        .then_some((kind, size)))
}

#[cfg(test)]
mod tests {
    use super::super::{IndexEntry, fragment_index, init_segment, media_segment};
    use super::*;

    fn movie() -> Movie {
        Movie {
            timescale: 30_000,
            tracks: vec![
                Track {
                    id: 1,
                    name: "position".into(),
                    kind: TrackKind::Av1 {
                        width: 64,
                        height: 48,
                        bit_depth: 10,
                        sequence_header: vec![0x0a, 0x01, 0x00],
                    },
                },
                Track {
                    id: 2,
                    name: "gop".into(),
                    kind: TrackKind::Metadata {
                        mime: "application/x-test".into(),
                    },
                },
            ],
        }
    }

    fn fragment(seq: u32) -> Fragment {
        let s = |n: u8, sync| Sample {
            data: vec![n; n as usize + 1],
            duration: 1000,
            sync,
        };
        Fragment {
            sequence: seq,
            base_time: (seq as u64 - 1) * 3000,
            tracks: vec![
                (1, vec![s(seq as u8, true), s(7, false), s(9, false)]),
                (2, vec![s(3, true)]),
            ],
        }
    }

    fn file(with_index: bool) -> Vec<u8> {
        let m = movie();
        let mut out = init_segment(&m);
        let mut entries = Vec::new();
        for seq in 1..=3 {
            entries.push(IndexEntry {
                time: fragment(seq).base_time,
                offset: out.len() as u64,
                traf: 1,
            });
            out.extend(media_segment(&fragment(seq)));
        }
        if with_index {
            out.extend(fragment_index(&[(1, entries.clone()), (2, entries)]));
        }
        out
    }

    #[test]
    fn roundtrip_with_and_without_index() {
        for with_index in [true, false] {
            let bytes = file(with_index);
            let mut r = Mp4Reader::open(std::io::Cursor::new(bytes)).unwrap();
            assert_eq!(r.movie, movie());
            assert_eq!(r.fragments.len(), 3);
            assert!(!r.truncated);
            for i in (0..3).rev() {
                let want = fragment(i as u32 + 1);
                assert_eq!(r.fragment(i).unwrap(), want);
                let span = r.fragment_span(i).unwrap();
                assert_eq!(span.base_time, want.base_time);
                assert_eq!(span.samples, vec![(1, 3), (2, 1)]);
            }
        }
    }

    #[test]
    fn truncated_file_keeps_complete_fragments() {
        let bytes = file(false);
        let cut = bytes.len() - 5;
        let r = Mp4Reader::open(std::io::Cursor::new(bytes[..cut].to_vec())).unwrap();
        assert_eq!(r.fragments.len(), 2);
        assert!(r.truncated);
        let seg = media_segment(&fragment(1));
        assert!(parse_fragment(&seg[..seg.len() - 1]).is_err());
    }
}
