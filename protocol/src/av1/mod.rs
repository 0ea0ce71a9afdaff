//! AV1 plane codec adapters, each behind a narrow trait so other implementations (the `dav1d`
//! crate, Android MediaCodec, iOS VideoToolbox) can be plugged in.
//!
//! Planes are monochrome (4:0:0) pictures of 8 or 10 bits: AV1 Main profile, which phone
//! hardware decoders play.

mod obu;
mod rav1d_decoder;
mod rav1e_encoder;

pub use obu::{sequence_header_obu, strip_temporal_delimiters};
pub use rav1d_decoder::Rav1dDecoder;
pub use rav1e_encoder::{EncoderSettings, LiveGopEncoder, Rav1eEncoder};

/// One monochrome picture: samples in raster order, 8 or 10 significant bits each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Bits per sample, 8 or 10.
    pub bit_depth: u8,
    /// `width * height` samples.
    pub samples: Vec<u16>,
}

impl Picture {
    /// A picture filled with `value`.
    pub fn filled(width: usize, height: usize, bit_depth: u8, value: u16) -> Self {
        Self {
            width,
            height,
            bit_depth,
            samples: vec![value; width * height],
        }
    }
}

/// A coded group of pictures: one temporal unit per picture, starting with a key frame.
#[derive(Clone, Debug)]
pub struct CodedGop {
    /// The sequence header OBU, for the container's codec configuration.
    pub sequence_header: Vec<u8>,
    /// One sample per picture, in presentation order, without temporal delimiters.
    pub samples: Vec<Vec<u8>>,
}

/// Why a plane could not be coded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The encoder refused its configuration or failed.
    #[error("AV1 encoder: {0}")]
    Encoder(String),
    /// The bitstream could not be decoded.
    #[error("AV1 decoder: {0}")]
    Decoder(String),
    /// Pictures of one GOP disagree in size or depth, or a depth is unsupported.
    #[error("plane format: {0}")]
    Format(String),
}

/// Runs `job` on every item, each on its own thread, and collects the results in order: the
/// tracks of a GOP are independent AV1 streams, so coding them side by side takes the time of
/// the slowest. A panicking job becomes `panicked`'s error.
pub(crate) fn per_track<I, T>(
    items: I,
    job: impl Fn(I::Item) -> Result<T, CodecError> + Sync,
    panicked: fn(String) -> CodecError,
) -> Result<Vec<T>, CodecError>
where
    I: IntoIterator,
    I::Item: Send,
    T: Send,
{
    std::thread::scope(|scope| {
        let job = &job;
        let workers: Vec<_> = items
            .into_iter()
            .map(|item| scope.spawn(move || job(item)))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(panicked("codec thread panicked".into())))
            })
            .collect()
    })
}

/// Encodes a GOP of monochrome pictures into AV1 temporal units, independent of other GOPs.
pub trait PlaneEncoder: Send {
    /// Codes `pictures` (all the same size and depth) starting with a key frame.
    fn encode_gop(&mut self, pictures: &[Picture]) -> Result<CodedGop, CodecError>;
}

/// Decodes the temporal units of one GOP back to pictures.
pub trait PlaneDecoder: Send {
    /// Decodes `samples`, which start with a key frame, into one picture each.
    fn decode_gop(&mut self, samples: &[&[u8]]) -> Result<Vec<Picture>, CodecError>;

    /// Decodes one frame as soon as it arrives (live playback): `sample` follows the previous
    /// call's within a GOP, or starts a new GOP when `key` is set. After an error the GOP's
    /// remaining frames are refused until the next key frame.
    fn decode_frame(&mut self, sample: &[u8], key: bool) -> Result<Picture, CodecError>;
}
