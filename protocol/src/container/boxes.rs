//! Box-level building blocks shared by the writer and the reader.

use super::ContainerError;

/// Appends ISOBMFF boxes to a buffer, patching sizes when a box closes.
pub(crate) struct BoxWriter {
    pub(crate) buf: Vec<u8>,
    open: Vec<usize>,
}

impl BoxWriter {
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::new(),
            open: Vec::new(),
        }
    }

    pub(crate) fn begin(&mut self, kind: &[u8; 4]) -> &mut Self {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(kind);
        self
    }

    pub(crate) fn begin_full(&mut self, kind: &[u8; 4], version: u8, flags: u32) -> &mut Self {
        self.begin(kind);
        self.u32(((version as u32) << 24) | (flags & 0xff_ffff))
    }

    pub(crate) fn end(&mut self) -> &mut Self {
        let start = self.open.pop().expect("end() matches a begin()");
        let size = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
        self
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    pub(crate) fn zeros(&mut self, n: usize) -> &mut Self {
        self.buf.resize(self.buf.len() + n, 0);
        self
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// A null-terminated UTF-8 string.
    pub(crate) fn cstr(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes()).u8(0)
    }

    /// The unity transformation matrix of `mvhd` and `tkhd`.
    pub(crate) fn unity_matrix(&mut self) -> &mut Self {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
        self
    }
}

/// A parsed box: its type, body, and total size in the parent.
pub(crate) struct BoxRef<'a> {
    pub(crate) kind: [u8; 4],
    pub(crate) body: &'a [u8],
}

/// Reads a box header at the start of `data`: (type, header length, total size). A size
/// running past `data` is reported as truncation.
pub(crate) fn header(data: &[u8]) -> Result<([u8; 4], usize, u64), ContainerError> {
    if data.len() < 8 {
        return Err(ContainerError::Truncated("box header".into()));
    }
    let size32 = u32::from_be_bytes(data[0..4].try_into().expect("4 bytes"));
    let kind: [u8; 4] = data[4..8].try_into().expect("4 bytes");
    let (header_len, size) = match size32 {
        1 => {
            let large = data
                .get(8..16)
                .ok_or_else(|| ContainerError::Truncated("large box size".into()))?;
            (16, u64::from_be_bytes(large.try_into().expect("8 bytes")))
        }
        0 => {
            return Err(ContainerError::Unsupported(
                "box extending to end of file".into(),
            ));
        }
        s => (8, s as u64),
    };
    if size < header_len as u64 {
        return Err(ContainerError::Malformed(format!(
            "box '{}' smaller than its header",
            String::from_utf8_lossy(&kind)
        )));
    }
    Ok((kind, header_len, size))
}

/// Splits `data` into its child boxes.
pub(crate) fn children(data: &[u8]) -> Result<Vec<BoxRef<'_>>, ContainerError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let (kind, header_len, size) = header(&data[pos..])?;
        let end = pos
            .checked_add(usize::try_from(size).unwrap_or(usize::MAX))
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                ContainerError::Truncated(format!("box '{}'", String::from_utf8_lossy(&kind)))
            })?;
        out.push(BoxRef {
            kind,
            body: &data[pos + header_len..end],
        });
        pos = end;
    }
    Ok(out)
}

/// The first child of type `kind`.
pub(crate) fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Result<&'a [u8], ContainerError> {
    children(data)?
        .into_iter()
        .find(|b| &b.kind == kind)
        .map(|b| b.body)
        .ok_or_else(|| {
            ContainerError::Malformed(format!("missing '{}' box", String::from_utf8_lossy(kind)))
        })
}

/// Big-endian field reader over a box body.
pub(crate) struct Fields<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ContainerError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| ContainerError::Malformed("box body too short".into()))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ContainerError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ContainerError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ContainerError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, ContainerError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// A null-terminated string (or the rest of the body if unterminated).
    pub(crate) fn cstr(&mut self) -> String {
        let rest = self.rest();
        let len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let s = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.pos += (len + 1).min(rest.len());
        s
    }
}
