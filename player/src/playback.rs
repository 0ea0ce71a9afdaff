//! The playback clock: play/pause, loop, speed, seeking and frame stepping, independent of any
//! engine so it can be tested alone. The frame shown is whatever the clock says; decoding
//! follows it.

use crate::decode::Position;

/// Slowest and fastest playback speeds.
pub const SPEEDS: [f64; 2] = [0.25, 4.0];

/// Where playback is and how it moves.
#[derive(Clone, Debug)]
pub struct Clock {
    fps: f64,
    frame_count: u64,
    /// Seconds into the current lap.
    time: f64,
    lap: u64,
    /// Whether the clock advances.
    pub playing: bool,
    /// Whether the end wraps to the start.
    pub looping: bool,
    speed: f64,
}

/// What a clock operation asks of the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jump {
    /// Nothing: decoding goes on in order.
    None,
    /// Restart decoding at this position.
    Seek(Position),
}

impl Clock {
    /// A clock for a stream, paused at frame 0 unless `playing`.
    pub fn new(fps: f64, frame_count: u64, playing: bool, looping: bool) -> Self {
        Self {
            fps: if fps.is_finite() && fps > 0.0 {
                fps
            } else {
                30.0
            },
            frame_count: frame_count.max(1),
            time: 0.0,
            lap: 0,
            playing,
            looping,
            speed: 1.0,
        }
    }

    /// The frame the clock is on.
    pub fn position(&self) -> Position {
        Position {
            lap: self.lap,
            frame: ((self.time * self.fps + 1e-6).floor() as u64).min(self.frame_count - 1),
        }
    }

    /// Frames per second.
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// Frames in the stream.
    pub fn frame_count(&self) -> u64 {
        self.frame_count
    }

    /// Playback speed.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Sets the speed, clamped to [`SPEEDS`].
    pub fn set_speed(&mut self, speed: f64) {
        self.speed = speed.clamp(SPEEDS[0], SPEEDS[1]);
    }

    /// Doubles (`faster`) or halves the speed within [`SPEEDS`].
    pub fn step_speed(&mut self, faster: bool) {
        self.set_speed(if faster {
            self.speed * 2.0
        } else {
            self.speed / 2.0
        });
    }

    /// Fraction of the stream played in this lap, for the timeline bar.
    pub fn progress(&self) -> f64 {
        (self.position().frame as f64 + 0.5) / self.frame_count as f64
    }

    /// Advances by `dt` seconds of wall-clock time when playing.
    pub fn advance(&mut self, dt: f64) {
        if !(self.playing && dt.is_finite() && dt > 0.0) {
            return;
        }
        let duration = self.frame_count as f64 / self.fps;
        self.time += dt * self.speed;
        if self.time >= duration {
            if self.looping {
                let laps = (self.time / duration).floor();
                self.time -= laps * duration;
                self.lap += laps as u64;
            } else {
                self.time = (self.frame_count - 1) as f64 / self.fps;
                self.playing = false;
            }
        }
    }

    /// Jumps to `frame` (clamped) in the current lap.
    pub fn seek(&mut self, frame: u64) -> Jump {
        let frame = frame.min(self.frame_count - 1);
        self.time = frame as f64 / self.fps;
        Jump::Seek(self.position())
    }

    /// Jumps to a fraction of the stream (the timeline bar was clicked or dragged).
    pub fn scrub(&mut self, fraction: f64) -> Jump {
        let f = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.seek((f * self.frame_count as f64).floor() as u64)
    }

    /// Pauses and moves one frame forward or back. Forward needs no seek (the decoder is
    /// already ahead); back restarts decoding at the frame's GOP.
    pub fn step(&mut self, forward: bool) -> Jump {
        self.playing = false;
        let frame = self.position().frame;
        if forward {
            if frame + 1 < self.frame_count {
                self.time = (frame + 1) as f64 / self.fps;
            }
            Jump::None
        } else {
            self.seek(frame.saturating_sub(1))
        }
    }

    /// Play/pause; playing again at the very end of a non-looping stream restarts it.
    pub fn toggle(&mut self) -> Jump {
        self.playing = !self.playing;
        if self.playing && !self.looping && self.position().frame + 1 >= self.frame_count {
            return self.seek(0);
        }
        Jump::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_loops_and_stops_at_the_end() {
        let mut c = Clock::new(30.0, 60, true, true);
        c.advance(1.0);
        assert_eq!(c.position(), Position { lap: 0, frame: 30 });
        c.advance(1.5);
        assert_eq!(c.position(), Position { lap: 1, frame: 15 });
        c.looping = false;
        c.advance(10.0);
        assert_eq!(c.position().frame, 59);
        assert!(!c.playing);
        assert_eq!(c.toggle(), Jump::Seek(Position { lap: 1, frame: 0 }));
    }

    #[test]
    fn speed_is_clamped_and_scales_time() {
        let mut c = Clock::new(10.0, 100, true, false);
        c.set_speed(100.0);
        assert_eq!(c.speed(), 4.0);
        c.step_speed(false);
        c.step_speed(false);
        c.step_speed(false);
        c.step_speed(false);
        assert_eq!(c.speed(), 0.25);
        c.advance(4.0);
        assert_eq!(c.position().frame, 10);
    }

    #[test]
    fn seeking_scrubbing_and_stepping() {
        let mut c = Clock::new(25.0, 50, true, false);
        assert_eq!(c.scrub(0.5), Jump::Seek(Position { lap: 0, frame: 25 }));
        assert_eq!(c.scrub(2.0), Jump::Seek(Position { lap: 0, frame: 49 }));
        assert_eq!(c.scrub(f64::NAN), Jump::Seek(Position { lap: 0, frame: 0 }));
        assert_eq!(c.step(true), Jump::None);
        assert!(!c.playing);
        assert_eq!(c.position().frame, 1);
        assert_eq!(c.step(false), Jump::Seek(Position { lap: 0, frame: 0 }));
        assert_eq!(c.step(false), Jump::Seek(Position { lap: 0, frame: 0 }));
        c.seek(49);
        assert_eq!(c.step(true), Jump::None);
        assert_eq!(c.position().frame, 49);
    }
}
