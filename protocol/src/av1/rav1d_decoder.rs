//! AV1 decoding with rav1d, the Rust port of dav1d (pure cargo build, bit-exact with dav1d).

use re_rav1d::dav1d::{Decoder, Error as DavError, PlanarImageComponent, Settings};

use super::{CodecError, Picture, PlaneDecoder};

/// A [`PlaneDecoder`] on rav1d. A fresh decoder per GOP keeps GOPs independent.
pub struct Rav1dDecoder {
    threads: u32,
    /// Largest picture (in pixels) accepted, so a hostile stream cannot make us allocate freely.
    max_pixels: u32,
    /// The GOP being decoded frame by frame (live playback).
    live: Option<Decoder>,
}

impl Rav1dDecoder {
    /// A decoder using `threads` worker threads (0 lets rav1d choose).
    pub fn new(threads: u32) -> Self {
        Self {
            threads,
            max_pixels: 1 << 26,
            live: None,
        }
    }

    fn decoder(&self) -> Result<Decoder, CodecError> {
        let mut settings = Settings::new();
        settings.set_n_threads(self.threads);
        settings.set_max_frame_delay(1);
        settings.set_frame_size_limit(self.max_pixels);
        Decoder::with_settings(&settings).map_err(dav_err)
    }
}

fn dav_err(e: DavError) -> CodecError {
    CodecError::Decoder(e.to_string())
}

fn to_picture(p: &re_rav1d::dav1d::Picture) -> Result<Picture, CodecError> {
    let (width, height) = (p.width() as usize, p.height() as usize);
    let bits = p
        .bits_per_component()
        .map(|b| b.0 as u8)
        .ok_or_else(|| CodecError::Decoder("unknown bit depth".into()))?;
    let stride = p.stride(PlanarImageComponent::Y) as usize;
    let plane = p.plane(PlanarImageComponent::Y);
    let data: &[u8] = &plane;
    let mut samples = Vec::with_capacity(width * height);
    for row in 0..height {
        let line = &data[row * stride..];
        if bits > 8 {
            samples.extend(
                line[..2 * width]
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]])),
            );
        } else {
            samples.extend(line[..width].iter().map(|&b| b as u16));
        }
    }
    Ok(Picture {
        width,
        height,
        bit_depth: bits,
        samples,
    })
}

impl PlaneDecoder for Rav1dDecoder {
    fn decode_gop(&mut self, samples: &[&[u8]]) -> Result<Vec<Picture>, CodecError> {
        let mut dec = self.decoder()?;
        let mut out = Vec::with_capacity(samples.len());
        for sample in samples {
            feed(&mut dec, sample, &mut out)?;
        }
        drain(&mut dec, &mut out)?;
        if out.len() != samples.len() {
            return Err(CodecError::Decoder(format!(
                "{} pictures from {} samples",
                out.len(),
                samples.len()
            )));
        }
        Ok(out)
    }

    fn decode_frame(&mut self, sample: &[u8], key: bool) -> Result<Picture, CodecError> {
        if key {
            self.live = Some(self.decoder()?);
        }
        let Some(dec) = self.live.as_mut() else {
            return Err(CodecError::Decoder(
                "a frame without its GOP's key frame".into(),
            ));
        };
        let mut out = Vec::with_capacity(1);
        let fed = feed(dec, sample, &mut out);
        if fed.is_err() || out.len() != 1 {
            // The GOP cannot go on: its next frames wait for the next key frame.
            self.live = None;
            fed?;
            return Err(CodecError::Decoder(format!(
                "{} pictures from one sample",
                out.len()
            )));
        }
        Ok(out.pop().expect("one picture"))
    }
}

/// Sends one sample and collects the pictures it completes.
fn feed(dec: &mut Decoder, sample: &[u8], out: &mut Vec<Picture>) -> Result<(), CodecError> {
    match dec.send_data(sample.to_vec(), None, None, None) {
        Ok(()) => {}
        Err(DavError::Again) => loop {
            drain(dec, out)?;
            match dec.send_pending_data() {
                Ok(()) => break,
                Err(DavError::Again) => continue,
                Err(e) => return Err(dav_err(e)),
            }
        },
        Err(e) => return Err(dav_err(e)),
    }
    drain(dec, out)
}

fn drain(dec: &mut Decoder, out: &mut Vec<Picture>) -> Result<(), CodecError> {
    loop {
        match dec.get_picture() {
            Ok(p) => out.push(to_picture(&p)?),
            Err(DavError::Again) => return Ok(()),
            Err(e) => return Err(dav_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EncoderSettings, PlaneEncoder, Rav1eEncoder};
    use super::*;

    fn gradient(t: usize, bit_depth: u8) -> Picture {
        let (w, h) = (64, 48);
        let max = (1u32 << bit_depth) - 1;
        let samples = (0..w * h)
            .map(|i| (((i % w) * 4 + (i / w) * 2 + t * 3) as u32 * max / 400).min(max) as u16)
            .collect();
        Picture {
            width: w,
            height: h,
            bit_depth,
            samples,
        }
    }

    #[test]
    fn roundtrip_8_and_10_bit() {
        for bit_depth in [8, 10] {
            let pictures: Vec<Picture> = (0..5).map(|t| gradient(t, bit_depth)).collect();
            let mut enc = Rav1eEncoder::new(EncoderSettings {
                speed: 10,
                quantizer: 20,
                fps: 30.0,
                threads: 1,
            });
            let gop = enc.encode_gop(&pictures).unwrap();
            assert_eq!(gop.samples.len(), 5);
            assert_eq!(gop.sequence_header[0] >> 3 & 0xf, 1);
            let refs: Vec<&[u8]> = gop.samples.iter().map(Vec::as_slice).collect();
            let decoded = Rav1dDecoder::new(1).decode_gop(&refs).unwrap();
            let max = (1i32 << bit_depth) - 1;
            for (a, b) in pictures.iter().zip(&decoded) {
                assert_eq!((b.width, b.height, b.bit_depth), (64, 48, bit_depth));
                let worst = a
                    .samples
                    .iter()
                    .zip(&b.samples)
                    .map(|(x, y)| (*x as i32 - *y as i32).abs())
                    .max()
                    .unwrap();
                assert!(worst <= max / 40, "{bit_depth}-bit worst error {worst}");
            }
        }
    }

    #[test]
    fn frame_by_frame_decodes_as_the_whole_gop() {
        let pictures: Vec<Picture> = (0..6).map(|t| gradient(t, 10)).collect();
        let mut enc = Rav1eEncoder::new(EncoderSettings {
            speed: 10,
            quantizer: 60,
            fps: 30.0,
            threads: 1,
        });
        let gop = enc.encode_gop(&pictures).unwrap();
        let refs: Vec<&[u8]> = gop.samples.iter().map(Vec::as_slice).collect();
        let whole = Rav1dDecoder::new(1).decode_gop(&refs).unwrap();
        let mut live = Rav1dDecoder::new(1);
        // Without a key frame first, nothing decodes.
        assert!(live.decode_frame(refs[1], false).is_err());
        for _ in 0..2 {
            for (k, sample) in refs.iter().enumerate() {
                assert_eq!(
                    live.decode_frame(sample, k == 0).unwrap(),
                    whole[k],
                    "frame {k}"
                );
            }
        }
        // A broken frame ends the GOP: its next frames are refused until a key frame.
        assert!(live.decode_frame(&[0x32, 0x05, 1, 2, 3], false).is_err());
        assert!(live.decode_frame(refs[1], false).is_err());
        assert_eq!(live.decode_frame(refs[0], true).unwrap(), whole[0]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let junk: &[u8] = &[0x32, 0x05, 1, 2, 3, 4, 5];
        assert!(Rav1dDecoder::new(1).decode_gop(&[junk]).is_err());
    }
}
