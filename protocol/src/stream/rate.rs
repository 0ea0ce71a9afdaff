//! Rate control for a target bitrate. Every GOP is its own AV1 sequence, so rav1e's rate
//! control starts afresh at each one and, at low targets, overshot by 2× (its key frame alone
//! outweighed a short GOP's share); and the side data was not counted at all. Instead each GOP
//! is coded at constant quantizers — the preset's, moved together by one offset — chosen so the
//! whole GOP (planes, side data, container) fits its share of the target: trial encodes of the
//! same pictures, the offset found by secant steps in the log of the bytes and then bisection,
//! starting from the previous GOP's. What a GOP writes beyond its share (or below) is made up by
//! the next ones.

use crate::av1::{CodecError, CodedGop, EncoderSettings};

/// Accepted error of a GOP's plane bytes, as a share of their budget.
const TOLERANCE: f64 = 0.03;

/// Most AV1 passes over one GOP.
const PASSES: usize = 7;

/// Container bytes per one-track one-sample fragment (`moof` + `mdat` headers).
const CHUNK_OVERHEAD: f64 = 100.0;

/// Bytes per quantizer step, as a log-slope guess before two passes measure it: AV1's step size
/// doubles about every 24 quantizer indices, and bytes roughly follow.
const SLOPE: f64 = -0.03;

/// A target bitrate and what the stream has spent against it.
#[derive(Clone, Debug)]
pub(crate) struct RateControl {
    bits_per_second: f64,
    fps: f64,
    /// The quantizer offset the last GOP settled on.
    offset: i32,
    /// Bytes written beyond the budget so far (negative: below).
    debt: f64,
}

impl RateControl {
    pub(crate) fn new(bits_per_second: u64, fps: f64) -> Self {
        Self {
            bits_per_second: bits_per_second as f64,
            fps: fps.max(1e-3),
            offset: 0,
            debt: 0.0,
        }
    }

    /// The bytes a GOP of `frames` frames should take, its share of what is owed included (at
    /// most half its own share either way).
    pub(crate) fn budget(&self, frames: usize) -> f64 {
        let share = self.bits_per_second / 8.0 * frames as f64 / self.fps;
        share - self.debt.clamp(-0.5 * share, 0.5 * share)
    }

    /// Codes a GOP of `frames` frames carrying `fixed` bytes beside its planes (side data) in
    /// `chunks` container fragments: `code` codes its planes with the given settings (`base`
    /// with every quantizer moved by one offset) — the pass whose bytes come closest under the
    /// budget wins.
    pub(crate) fn code(
        &mut self,
        frames: usize,
        fixed: usize,
        chunks: usize,
        base: &[EncoderSettings],
        mut code: impl FnMut(&[EncoderSettings]) -> Result<Vec<CodedGop>, CodecError>,
    ) -> Result<Vec<CodedGop>, CodecError> {
        let target = (self.budget(frames) - fixed as f64 - CHUNK_OVERHEAD * chunks as f64).max(1.0);
        let size = |coded: &[CodedGop]| -> f64 {
            coded
                .iter()
                .flat_map(|c| &c.samples)
                .map(Vec::len)
                .sum::<usize>() as f64
        };
        // (offset, bytes) tried so far; the best under the target, and the smallest over it.
        let mut under: Option<(i32, f64, Vec<CodedGop>)> = None;
        let mut over: Option<(i32, f64, Vec<CodedGop>)> = None;
        let mut offset = self.offset;
        let mut last: Option<(i32, f64)> = None;
        for _ in 0..PASSES {
            let settings: Vec<EncoderSettings> = base
                .iter()
                .map(|s| EncoderSettings {
                    quantizer: (s.quantizer as i32 + offset).clamp(0, 255) as u8,
                    ..*s
                })
                .collect();
            let coded = code(&settings)?;
            let bytes = size(&coded);
            let close = (bytes / target - 1.0).abs() <= TOLERANCE;
            if bytes <= target || close {
                if under.as_ref().is_none_or(|u| bytes > u.1) {
                    under = Some((offset, bytes, coded));
                }
            } else if over.as_ref().is_none_or(|o| bytes < o.1) {
                over = Some((offset, bytes, coded));
            }
            if close {
                break;
            }
            // The next offset: bisect a bracket, else a secant step in log bytes.
            let next = match (&under, &over) {
                (Some(u), Some(o)) => (u.0 + o.0).div_euclid(2),
                _ => {
                    let slope = match last {
                        Some((d, b)) if d != offset && b > 0.0 && bytes > 0.0 => {
                            ((bytes.ln() - b.ln()) / (offset - d) as f64).min(-1e-3)
                        }
                        _ => SLOPE,
                    };
                    let step = ((target.ln() - bytes.max(1.0).ln()) / slope).round() as i32;
                    offset + step.clamp(-96, 96)
                }
            }
            .clamp(-255, 255);
            // Nothing left to try: the bracket closed, or every quantizer is at its end.
            if next == offset
                || under.as_ref().is_some_and(|u| u.0 == next)
                || over.as_ref().is_some_and(|o| o.0 == next)
            {
                break;
            }
            last = Some((offset, bytes));
            offset = next;
        }
        let (offset, _, coded) = under.or(over).expect("at least one pass was coded");
        self.offset = offset;
        Ok(coded)
    }

    /// Accounts for a GOP of `frames` frames that came to `bytes` in all.
    pub(crate) fn spent(&mut self, frames: usize, bytes: usize) {
        let share = self.bits_per_second / 8.0 * frames as f64 / self.fps;
        self.debt += bytes as f64 - share;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(q: u8) -> EncoderSettings {
        EncoderSettings {
            speed: 10,
            quantizer: q,
            fps: 30.0,
            threads: 1,
        }
    }

    /// A made-up codec whose bytes halve every 24 quantizer steps.
    fn fake(settings: &[EncoderSettings]) -> Result<Vec<CodedGop>, CodecError> {
        Ok(settings
            .iter()
            .map(|s| CodedGop {
                sequence_header: Vec::new(),
                samples: vec![vec![
                    0;
                    (100_000.0 * 0.5f64.powf(s.quantizer as f64 / 24.0))
                        as usize
                ]],
            })
            .collect())
    }

    #[test]
    fn gops_land_on_their_budget_and_debts_are_made_up() {
        // 240 kbit/s at 30 fps, GOPs of 30 frames: 30 kB each.
        let mut rate = RateControl::new(240_000, 30.0);
        let base = [settings(16), settings(70)];
        let mut total = 0;
        for _ in 0..5 {
            let coded = rate.code(30, 2_000, 0, &base, fake).unwrap();
            let bytes: usize = coded.iter().flat_map(|c| &c.samples).map(Vec::len).sum();
            let gop = bytes + 2_000;
            assert!(
                (gop as f64 / 30_000.0 - 1.0).abs() < 0.1,
                "a GOP of {gop} bytes for 30,000"
            );
            rate.spent(30, gop);
            total += gop;
        }
        assert!((total as f64 / 150_000.0 - 1.0).abs() < 0.03, "{total}");
        // A target below what the largest quantizers give: their bytes, not a failure.
        let mut tiny = RateControl::new(100, 30.0);
        let coded = tiny.code(1, 0, 0, &base, fake).unwrap();
        assert!(coded.iter().all(|c| c.samples[0].len() < 100_000 >> 9));
    }
}
