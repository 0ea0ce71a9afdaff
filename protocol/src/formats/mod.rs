//! Readers for the splat formats people actually have, and the Inria PLY writer.
//!
//! Every parser works on a byte slice so it can be fuzzed and never trusts a count from a header
//! before checking it against the bytes that are really there.

pub(crate) mod bytes;
mod compressed_ply;

pub(crate) use bytes::{Cursor as Reader, check_fits};
pub mod ply;
pub mod sog;
pub mod splat;
pub mod spz;
mod zip;

use std::path::{Path, PathBuf};

use crate::gaussian::{FrameError, GaussianFrame};

/// Why bytes could not be read as Gaussians.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The data ends before what its header promises.
    #[error("truncated: {0}")]
    Truncated(String),
    /// The data is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The data is well formed but uses a feature this reader does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The decoded Gaussians are not valid (NaN, inconsistent arrays).
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// A [`FormatError`] or I/O error together with the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file's contents are not valid Gaussians.
    #[error("{path}: {error}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: FormatError,
    },
}

/// The splat file formats Splatcast reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplatFormat {
    /// Inria 3DGS PLY, binary or ASCII.
    Ply,
    /// antimatter15 `.splat`: 32 bytes per Gaussian.
    Splat,
    /// PlayCanvas SOG v2: zip of meta.json and lossless WebP planes.
    Sog,
    /// Niantic SPZ: gzip of packed fixed-point attributes.
    Spz,
}

impl SplatFormat {
    /// Guesses the format from the leading bytes, then the file extension.
    pub fn detect(path: &Path, head: &[u8]) -> Option<Self> {
        if head.starts_with(b"ply") {
            return Some(Self::Ply);
        }
        if head.starts_with(b"PK\x03\x04") {
            return Some(Self::Sog);
        }
        if head.starts_with(&[0x1f, 0x8b]) {
            return Some(Self::Spz);
        }
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "ply" => Some(Self::Ply),
            "splat" => Some(Self::Splat),
            "sog" => Some(Self::Sog),
            "spz" => Some(Self::Spz),
            _ => None,
        }
    }

    /// True for paths whose extension names one of these formats.
    pub fn has_known_extension(path: &Path) -> bool {
        path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            ["ply", "splat", "sog", "spz"].contains(&e.to_ascii_lowercase().as_str())
        })
    }
}

/// Parses `bytes` in `format`, then checks the frame is valid.
pub fn parse(bytes: &[u8], format: SplatFormat) -> Result<GaussianFrame, FormatError> {
    let frame = parse_unchecked(bytes, format)?;
    frame.validate()?;
    Ok(frame)
}

fn parse_unchecked(bytes: &[u8], format: SplatFormat) -> Result<GaussianFrame, FormatError> {
    Ok(match format {
        SplatFormat::Ply => ply::read(bytes)?,
        SplatFormat::Splat => splat::read(bytes)?,
        SplatFormat::Sog => sog::read(bytes)?,
        SplatFormat::Spz => spz::read(bytes)?,
    })
}

/// Reads one frame from a file in any supported format; refuses empty frames and frames with a
/// NaN or infinite value.
pub fn load(path: &Path) -> Result<GaussianFrame, LoadError> {
    load_with(path, false).map(|(frame, _)| frame)
}

/// [`load`], but when `drop_non_finite`, Gaussians holding a NaN or infinite value are dropped
/// (real captures have a few) instead of the file refused; returns how many went.
pub fn load_with(path: &Path, drop_non_finite: bool) -> Result<(GaussianFrame, usize), LoadError> {
    let bytes = std::fs::read(path).map_err(|error| LoadError::Io {
        path: path.to_owned(),
        error,
    })?;
    let format_err = |error| LoadError::Format {
        path: path.to_owned(),
        error,
    };
    let format = SplatFormat::detect(path, &bytes).ok_or_else(|| {
        format_err(FormatError::Unsupported(
            "not a PLY, .splat, SOG or SPZ file".into(),
        ))
    })?;
    let mut frame = parse_unchecked(&bytes, format).map_err(format_err)?;
    let dropped = if drop_non_finite {
        frame.retain_finite()
    } else {
        0
    };
    frame
        .validate()
        .map_err(|e| format_err(FormatError::from(e)))?;
    if frame.is_empty() {
        return Err(format_err(FormatError::Invalid(
            "holds no Gaussians".into(),
        )));
    }
    Ok((frame, dropped))
}
