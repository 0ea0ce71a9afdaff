//! Uniform scalar quantisation over a per-GOP range.

/// A closed value range mapped linearly onto the codes of a bit depth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// Value of code 0.
    pub lo: f32,
    /// Value of the largest code.
    pub hi: f32,
}

impl Range {
    /// The smallest range holding every value (a zero-width range if there are none).
    pub fn of(values: impl IntoIterator<Item = f32>) -> Self {
        let (lo, hi) = values
            .into_iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| {
                (l.min(v), h.max(v))
            });
        if lo > hi {
            Self { lo: 0.0, hi: 0.0 }
        } else {
            Self { lo, hi }
        }
    }

    /// A range holding these values on which 0 falls on a code, so values that stay at zero
    /// (static Gaussians' displacements) decode to zero up to float rounding, not to a
    /// half-step offset.
    pub fn with_exact_zero(values: impl IntoIterator<Item = f32>, bits: u8) -> Self {
        let r = Self::of(values.into_iter().chain([0.0]));
        let max = ((1u32 << bits) - 2) as f32;
        let step = (r.hi - r.lo) / max;
        if step <= 0.0 {
            return Self { lo: 0.0, hi: 0.0 };
        }
        let zero = (-r.lo / step).ceil();
        let lo = -zero * step;
        Self {
            lo,
            hi: lo + step * (max + 1.0),
        }
    }

    /// The code of `v` at `bits` bits (clamped into range).
    pub fn quantize(&self, v: f32, bits: u8) -> u16 {
        let max = ((1u32 << bits) - 1) as f32;
        if self.hi <= self.lo {
            return 0;
        }
        ((v - self.lo) / (self.hi - self.lo) * max)
            .round()
            .clamp(0.0, max) as u16
    }

    /// The value of `code` at `bits` bits.
    pub fn dequantize(&self, code: u16, bits: u8) -> f32 {
        let max = ((1u32 << bits) - 1) as f32;
        self.lo + (self.hi - self.lo) * (code as f32 / max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_within_half_a_step() {
        let r = Range::of([-2.0, 3.0, 0.5]);
        for bits in [8, 10, 16] {
            let step = 5.0 / ((1u32 << bits) - 1) as f32;
            for v in [-2.0f32, -1.234, 0.0, 2.999, 3.0] {
                let back = r.dequantize(r.quantize(v, bits), bits);
                assert!((back - v).abs() <= step * 0.5001, "{bits} {v} {back}");
            }
        }
        assert_eq!(Range::of([]).quantize(1.0, 8), 0);
    }

    #[test]
    fn exact_zero_is_a_code() {
        let r = Range::with_exact_zero([-0.013, 0.4], 10);
        let q = r.quantize(0.0, 10);
        assert!(r.dequantize(q, 10).abs() < 1e-7, "{}", r.dequantize(q, 10));
        assert!(r.lo <= -0.013 && r.hi >= 0.4);
        assert_eq!(
            Range::with_exact_zero([0.0, 0.0], 10).dequantize(0, 10),
            0.0
        );
    }
}
