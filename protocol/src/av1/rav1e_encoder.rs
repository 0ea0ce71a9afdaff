//! AV1 encoding with rav1e.

use rav1e::prelude::{
    ChromaSampling, Config, Context, EncoderConfig, EncoderStatus, Pixel, Rational,
    SceneDetectionSpeed, Tune,
};

use super::{
    CodecError, CodedGop, Picture, PlaneEncoder, sequence_header_obu, strip_temporal_delimiters,
};

/// Encoder knobs for one plane track.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncoderSettings {
    /// rav1e speed preset, 0 (slowest, best) to 10 (fastest).
    pub speed: u8,
    /// Base quantizer index, 0 (finest) to 255; in bitrate mode, the lowest allowed.
    pub quantizer: u8,
    /// Target bits per second, or 0 for constant-quantizer mode.
    pub bitrate: u32,
    /// Frames per second (time base of the stream).
    pub fps: f64,
    /// Worker threads for this encoder; above one, the picture is split into as many AV1 tiles
    /// (rounded up to a power of two) so that they have work to share.
    pub threads: usize,
}

/// A [`PlaneEncoder`] built on rav1e. Each GOP gets a fresh encoder context, so every GOP
/// starts with a key frame and decodes on its own (seeking, joining a live stream).
pub struct Rav1eEncoder {
    settings: EncoderSettings,
}

impl Rav1eEncoder {
    /// An encoder with these settings.
    pub fn new(settings: EncoderSettings) -> Self {
        Self { settings }
    }

    fn config(&self, first: &Picture, frames: usize) -> Config {
        let s = &self.settings;
        let mut enc = EncoderConfig::with_speed_preset(s.speed);
        enc.width = first.width;
        enc.height = first.height;
        enc.bit_depth = first.bit_depth as usize;
        enc.chroma_sampling = ChromaSampling::Cs400;
        let millis = (s.fps * 1000.0).round().max(1.0) as u64;
        enc.time_base = Rational::new(1000, millis);
        enc.min_key_frame_interval = frames as u64;
        enc.max_key_frame_interval = frames.max(1) as u64;
        enc.speed_settings.scene_detection_mode = SceneDetectionSpeed::None;
        // CDEF deringing is tuned to natural pictures; on attribute planes it changed neither
        // bytes nor attribute error measurably (codec-bench, every case within 0.3 %) and took
        // a quarter of the encode time at speed 10.
        enc.speed_settings.cdef = false;
        if s.threads > 1 {
            enc.tiles = s.threads;
        }
        // Planes are data, not pictures: minimise squared error, not perceived error.
        enc.tune = Tune::Psnr;
        if s.bitrate > 0 {
            enc.bitrate = s.bitrate.min(i32::MAX as u32) as i32;
            enc.min_quantizer = s.quantizer;
        } else {
            enc.quantizer = s.quantizer as usize;
        }
        Config::new()
            .with_encoder_config(enc)
            .with_threads(s.threads.max(1))
    }

    fn run<T: Pixel>(&self, pictures: &[Picture]) -> Result<CodedGop, CodecError> {
        let err = |e: &dyn std::fmt::Display| CodecError::Encoder(e.to_string());
        let first = &pictures[0];
        let mut ctx: Context<T> = self
            .config(first, pictures.len())
            .new_context()
            .map_err(|e| err(&e))?;
        let bytewidth = if first.bit_depth > 8 { 2 } else { 1 };
        let mut raw = Vec::with_capacity(first.samples.len() * bytewidth);
        for picture in pictures {
            raw.clear();
            if bytewidth == 1 {
                raw.extend(picture.samples.iter().map(|&s| s as u8));
            } else {
                raw.extend(picture.samples.iter().flat_map(|s| s.to_le_bytes()));
            }
            let mut frame = ctx.new_frame();
            frame.planes[0].copy_from_raw_u8(&raw, picture.width * bytewidth, bytewidth);
            ctx.send_frame(frame).map_err(|e| err(&e))?;
        }
        ctx.flush();
        let mut samples = Vec::with_capacity(pictures.len());
        let mut sequence_header = None;
        loop {
            match ctx.receive_packet() {
                Ok(packet) => {
                    if sequence_header.is_none() {
                        sequence_header = sequence_header_obu(&packet.data);
                    }
                    samples.push(strip_temporal_delimiters(&packet.data));
                }
                Err(EncoderStatus::Encoded) => {}
                Err(EncoderStatus::LimitReached) => break,
                Err(e) => return Err(err(&e)),
            }
        }
        if samples.len() != pictures.len() {
            return Err(CodecError::Encoder(format!(
                "{} packets for {} pictures",
                samples.len(),
                pictures.len()
            )));
        }
        let sequence_header = sequence_header
            .ok_or_else(|| CodecError::Encoder("key frame carries no sequence header".into()))?;
        Ok(CodedGop {
            sequence_header,
            samples,
        })
    }
}

impl PlaneEncoder for Rav1eEncoder {
    fn encode_gop(&mut self, pictures: &[Picture]) -> Result<CodedGop, CodecError> {
        let first = pictures
            .first()
            .ok_or_else(|| CodecError::Format("empty GOP".into()))?;
        if pictures.iter().any(|p| {
            (p.width, p.height, p.bit_depth) != (first.width, first.height, first.bit_depth)
        }) {
            return Err(CodecError::Format(
                "pictures of one GOP differ in size or depth".into(),
            ));
        }
        match first.bit_depth {
            8 => self.run::<u8>(pictures),
            10 => self.run::<u16>(pictures),
            d => Err(CodecError::Format(format!(
                "{d}-bit planes (Main profile has 8 and 10)"
            ))),
        }
    }
}
