//! The small part of ZIP that SOG bundles need: central directory, stored and deflated entries.

use std::io::Read;

use super::FormatError;
use super::bytes::Cursor;

const EOCD_SIG: u32 = 0x0605_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
/// Largest entry we inflate; SOG planes of 16M Gaussians stay well below.
const MAX_ENTRY: u64 = 1 << 30;
const MAX_DEFLATE_RATIO: u64 = 1032;

/// One archive member: its name and where its data lives.
pub(crate) struct Entry<'a> {
    pub(crate) name: String,
    method: u16,
    data: &'a [u8],
    size: u64,
}

/// Lists the members of a ZIP archive from its central directory.
pub(crate) fn entries(archive: &[u8]) -> Result<Vec<Entry<'_>>, FormatError> {
    let bad = |m: &str| FormatError::Invalid(format!("zip: {m}"));
    let search_from = archive.len().saturating_sub(22 + 65535);
    let eocd = (search_from..archive.len().saturating_sub(21))
        .rev()
        .find(|&i| archive[i..i + 4] == EOCD_SIG.to_le_bytes())
        .ok_or_else(|| bad("no end-of-central-directory record"))?;
    let mut c = Cursor::new(&archive[eocd + 10..]);
    let count = c.u16("eocd")? as usize;
    let _dir_size = c.u32("eocd")?;
    let dir_offset = c.u32("eocd")? as usize;
    let dir = archive
        .get(dir_offset..eocd)
        .ok_or_else(|| bad("central directory outside the file"))?;
    // Each directory record is at least 46 bytes: bounds the reservation.
    let mut out = Vec::with_capacity(count.min(dir.len() / 46));
    let mut c = Cursor::new(dir);
    for _ in 0..count {
        if c.u32("central directory")? != CENTRAL_SIG {
            return Err(bad("bad central directory record"));
        }
        c.take(6, "central directory")?;
        let method = c.u16("method")?;
        c.take(8, "central directory")?;
        let compressed = c.u32("sizes")? as usize;
        let size = c.u32("sizes")? as u64;
        let name_len = c.u16("name")? as usize;
        let extra_len = c.u16("extra")? as usize;
        let comment_len = c.u16("comment")? as usize;
        c.take(8, "central directory")?;
        let local = c.u32("offset")? as usize;
        let name = String::from_utf8_lossy(c.take(name_len, "name")?).into_owned();
        c.take(extra_len + comment_len, "extra")?;
        if compressed == u32::MAX as usize || size == u32::MAX as u64 {
            return Err(FormatError::Unsupported("ZIP64 archives".into()));
        }
        let mut l = Cursor::new(
            archive
                .get(local..)
                .ok_or_else(|| bad("entry outside the file"))?,
        );
        if l.u32("local header")? != LOCAL_SIG {
            return Err(bad("bad local header"));
        }
        l.take(22, "local header")?;
        let skip = l.u16("local header")? as usize + l.u16("local header")? as usize;
        l.take(skip, "local header")?;
        let data = l.take(compressed, "entry data")?;
        out.push(Entry {
            name,
            method,
            data,
            size,
        });
    }
    Ok(out)
}

impl Entry<'_> {
    /// The member's uncompressed bytes.
    pub(crate) fn read(&self) -> Result<Vec<u8>, FormatError> {
        let limit = (self.data.len() as u64 * MAX_DEFLATE_RATIO).min(MAX_ENTRY);
        if self.size > limit {
            return Err(FormatError::Invalid(format!(
                "zip entry '{}' claims {} bytes",
                self.name, self.size
            )));
        }
        match self.method {
            0 if self.data.len() as u64 == self.size => Ok(self.data.to_vec()),
            8 => {
                let mut out = Vec::with_capacity(self.size as usize);
                flate2::read::DeflateDecoder::new(self.data)
                    .take(self.size)
                    .read_to_end(&mut out)
                    .map_err(|e| FormatError::Invalid(format!("zip entry '{}': {e}", self.name)))?;
                if out.len() as u64 != self.size {
                    return Err(FormatError::Truncated(format!("zip entry '{}'", self.name)));
                }
                Ok(out)
            }
            0 => Err(FormatError::Invalid(format!(
                "zip entry '{}' has inconsistent sizes",
                self.name
            ))),
            m => Err(FormatError::Unsupported(format!(
                "zip compression method {m}"
            ))),
        }
    }
}
