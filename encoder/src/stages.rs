//! Where a frame's seconds went: a stopwatch whose laps are named stages (photos, gates, steps,
//! scoring, quantising, coding), so a per-frame cost that is not optimisation shows by name.

use std::time::Instant;

/// Seconds per named stage, in the order the stages ran; a stage timed twice adds up.
#[derive(Clone, Debug)]
pub struct Stages {
    laps: Vec<(&'static str, f64)>,
    since: Instant,
}

impl Default for Stages {
    fn default() -> Self {
        Self::start()
    }
}

impl Stages {
    /// Starts the clock.
    pub fn start() -> Self {
        Self {
            laps: Vec::new(),
            since: Instant::now(),
        }
    }

    /// Ends the stage `name` now: the seconds since the last lap (or the start) go to it.
    pub fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        let seconds = now.duration_since(self.since).as_secs_f64();
        self.since = now;
        self.add(name, seconds);
    }

    /// Adds `seconds` to the stage `name`.
    pub fn add(&mut self, name: &'static str, seconds: f64) {
        match self.laps.iter_mut().find(|(n, _)| *n == name) {
            Some((_, s)) => *s += seconds,
            None => self.laps.push((name, seconds)),
        }
    }

    /// Takes in `other`'s stages (a callee's), then restarts the clock so they are not counted
    /// again by this stopwatch's next lap.
    pub fn absorb(&mut self, other: &Stages) {
        for &(name, seconds) in &other.laps {
            self.add(name, seconds);
        }
        self.since = Instant::now();
    }

    /// Seconds of the stage `name` (0 when it never ran).
    pub fn get(&self, name: &str) -> f64 {
        self.laps
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, s)| *s)
    }

    /// Seconds of every stage.
    pub fn total(&self) -> f64 {
        self.laps.iter().map(|(_, s)| s).sum()
    }
}

impl std::fmt::Display for Stages {
    /// `name seconds` per stage, e.g. `photos 0.12 gates 0.48 steps 0.40`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, seconds)) in self.laps.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name} {seconds:.2}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_add_up_by_name_and_in_order() {
        let mut s = Stages::start();
        s.add("photos", 0.5);
        s.add("steps", 1.0);
        s.add("photos", 0.25);
        let mut callee = Stages::start();
        callee.add("score", 2.0);
        s.absorb(&callee);
        assert_eq!(s.get("photos"), 0.75);
        assert_eq!(s.get("missing"), 0.0);
        assert_eq!(s.total(), 3.75);
        assert_eq!(s.to_string(), "photos 0.75 steps 1.00 score 2.00");
        s.lap("pack");
        assert!(
            s.get("pack") < 1.0,
            "the absorbed seconds are not counted again"
        );
    }
}
