//! Just enough OBU parsing to move AV1 temporal units into ISOBMFF samples (AV1-ISOBMFF §2.4):
//! drop temporal delimiters, find the sequence header for `av1C`.

/// OBU type of a sequence header.
const OBU_SEQUENCE_HEADER: u8 = 1;
/// OBU type of a temporal delimiter.
const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// Splits a low-overhead bitstream into (type, whole OBU bytes); `None` if malformed.
fn obus(data: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let header = data[pos];
        let kind = (header >> 3) & 0xf;
        let extension = header & 0x4 != 0;
        let has_size = header & 0x2 != 0;
        let mut p = pos + 1 + extension as usize;
        let size = if has_size {
            let (size, len) = leb128(data.get(p..)?)?;
            p += len;
            size
        } else {
            data.len().checked_sub(p)?
        };
        let end = p.checked_add(size).filter(|&e| e <= data.len())?;
        out.push((kind, &data[pos..end]));
        pos = end;
    }
    Some(out)
}

fn leb128(data: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, &b) in data.iter().take(8).enumerate() {
        value |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The temporal unit without its temporal delimiter OBUs (unchanged if it cannot be parsed).
pub fn strip_temporal_delimiters(unit: &[u8]) -> Vec<u8> {
    match obus(unit) {
        Some(list) => list
            .into_iter()
            .filter(|(kind, _)| *kind != OBU_TEMPORAL_DELIMITER)
            .flat_map(|(_, bytes)| bytes.iter().copied())
            .collect(),
        None => unit.to_vec(),
    }
}

/// The first sequence header OBU in a temporal unit.
pub fn sequence_header_obu(unit: &[u8]) -> Option<Vec<u8>> {
    obus(unit)?
        .into_iter()
        .find(|(kind, _)| *kind == OBU_SEQUENCE_HEADER)
        .map(|(_, bytes)| bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_delimiter_and_finds_header() {
        // TD (type 2, has_size, size 0), sequence header (type 1, size 2), frame (type 6, size 1).
        let unit = [0x12, 0x00, 0x0a, 0x02, 0xaa, 0xbb, 0x32, 0x01, 0xcc];
        assert_eq!(strip_temporal_delimiters(&unit), unit[2..].to_vec());
        assert_eq!(
            sequence_header_obu(&unit),
            Some(vec![0x0a, 0x02, 0xaa, 0xbb])
        );
        assert_eq!(sequence_header_obu(&[0x0a, 0x05, 0x00]), None);
    }
}
