//! A bounds-checked little-endian cursor for the binary parsers.

use super::FormatError;

/// Reads fixed-size values from a byte slice, failing instead of panicking at its end.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return Err(FormatError::Truncated(format!(
                "{what} needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, FormatError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn f32(&mut self, what: &str) -> Result<f32, FormatError> {
        Ok(f32::from_bits(self.u32(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    pub(crate) fn f64(&mut self, what: &str) -> Result<f64, FormatError> {
        Ok(f64::from_bits(self.u64(what)?))
    }

    /// Bytes up to (not including) the next NUL, which is consumed.
    pub(crate) fn c_string(&mut self, what: &str) -> Result<&'a [u8], FormatError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| FormatError::Truncated(format!("{what} has no terminating NUL")))?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }
}

/// Checks that `count` records of `size` bytes fit in `available` bytes before anything is
/// allocated for them.
pub(crate) fn check_fits(
    count: usize,
    size: usize,
    available: usize,
    what: &str,
) -> Result<(), FormatError> {
    match count.checked_mul(size) {
        Some(total) if total <= available => Ok(()),
        _ => Err(FormatError::Truncated(format!(
            "header declares {count} {what} of {size} bytes but only {available} bytes follow"
        ))),
    }
}
