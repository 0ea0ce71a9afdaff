//! Choosing a rendition of a quality ladder (`publish --ladder`) from what the viewer
//! measures, engine-free so it is tested with made-up arrivals. A viewer starts on the lowest
//! rendition (the fastest join); it steps down as soon as frames arrive later and later than
//! their media time (the link carries less than the rendition needs), and steps up after a
//! stable hold when it receives the current rendition's full rate on time; a step up that
//! has to be undone doubles the hold, so a viewer at its link's limit does not oscillate.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Arrival later than the best seen by this much (s) means the link falls behind.
const DOWN_LAG: f64 = 0.35;
/// Within this much of the best (s) counts as on time.
const ON_TIME: f64 = 0.1;
/// First hold before probing a higher rendition.
const HOLD: Duration = Duration::from_secs(4);
/// Longest hold.
const MAX_HOLD: Duration = Duration::from_secs(64);
/// After stepping down, the link gets this long to catch up before the next step down.
const SETTLE: Duration = Duration::from_millis(1500);
/// Throughput is measured over this window.
const WINDOW: Duration = Duration::from_secs(2);

/// The rendition choice of one viewer.
#[derive(Clone, Debug)]
pub struct Abr {
    /// Rendition indices from the lowest bitrate to the highest.
    order: Vec<usize>,
    rates: Vec<u64>,
    at: usize,
    since: Instant,
    hold: Duration,
    probed: bool,
    start: Option<(Instant, f64)>,
    best_lag: f64,
    window: VecDeque<(Instant, usize)>,
}

impl Abr {
    /// A choice among renditions of these bitrates (bits per second), starting at the lowest.
    pub fn new(rates: &[u64], now: Instant) -> Self {
        let mut order: Vec<usize> = (0..rates.len()).collect();
        order.sort_by_key(|&k| rates[k]);
        Self {
            order,
            rates: rates.to_vec(),
            at: 0,
            since: now,
            hold: HOLD,
            probed: false,
            start: None,
            best_lag: f64::INFINITY,
            window: VecDeque::new(),
        }
    }

    /// The rendition to watch now.
    pub fn current(&self) -> usize {
        self.order.get(self.at).copied().unwrap_or(0)
    }

    /// Bits per second received over the last two seconds.
    pub fn throughput(&self) -> f64 {
        let bytes: usize = self.window.iter().map(|(_, b)| b).sum();
        8.0 * bytes as f64 / WINDOW.as_secs_f64()
    }

    /// A frame of `bytes` arrived at `arrived`, `media` seconds into the broadcast: the
    /// rendition to switch to, when a switch is due.
    pub fn frame(&mut self, bytes: usize, arrived: Instant, media: f64) -> Option<usize> {
        self.window.push_back((arrived, bytes));
        while self
            .window
            .front()
            .is_some_and(|(t, _)| arrived.saturating_duration_since(*t) > WINDOW)
        {
            self.window.pop_front();
        }
        let (t0, m0) = *self.start.get_or_insert((arrived, media));
        let lag = arrived.saturating_duration_since(t0).as_secs_f64() - (media - m0);
        self.best_lag = self.best_lag.min(lag);
        let late = lag - self.best_lag;
        let held = arrived.saturating_duration_since(self.since);
        // A probe that falls behind is undone at once; a step down is given time to drain.
        if late > DOWN_LAG && self.at > 0 && (self.probed || held >= SETTLE) {
            if self.probed && held < 2 * self.hold {
                self.hold = (self.hold * 2).min(MAX_HOLD);
            }
            self.probed = false;
            return self.switch(self.at - 1, arrived);
        }
        let full = self.throughput() >= 0.8 * self.rates[self.current()] as f64;
        let window_full = self
            .window
            .front()
            .is_some_and(|(t, _)| arrived.saturating_duration_since(*t) >= WINDOW / 2);
        if late < ON_TIME
            && held >= self.hold
            && full
            && window_full
            && self.at + 1 < self.order.len()
        {
            self.probed = true;
            return self.switch(self.at + 1, arrived);
        }
        None
    }

    fn switch(&mut self, to: usize, now: Instant) -> Option<usize> {
        self.at = to;
        self.since = now;
        // The new rendition's rate is measured afresh.
        self.window.clear();
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `seconds` of 30 fps frames of rendition `k` sized for its rate, arriving `late`
    /// seconds per second later than their media time; returns the switches.
    fn play(abr: &mut Abr, t0: Instant, from: f64, seconds: f64, late: f64) -> Vec<usize> {
        let mut switches = Vec::new();
        let frames = (seconds * 30.0) as usize;
        for i in 0..frames {
            let media = from + i as f64 / 30.0;
            let bytes = (abr.rates[abr.current()] / 8 / 30) as usize;
            let at = t0 + Duration::from_secs_f64(media + late * (media - from));
            if let Some(k) = abr.frame(bytes, at, media) {
                switches.push(k);
            }
        }
        switches
    }

    #[test]
    fn steps_up_when_on_time_down_when_late_and_holds_longer_after_a_failed_probe() {
        let t0 = Instant::now();
        // Renditions given high first: the order comes from the rates.
        let mut abr = Abr::new(&[900_000, 100_000, 300_000], t0);
        assert_eq!(abr.current(), 1);
        // On time: up after the hold, one step at a time.
        assert_eq!(play(&mut abr, t0, 0.0, 9.0, 0.0), vec![2, 0]);
        // The top rendition falls behind: back down once it is 0.35 s late, and not again
        // while the link drains.
        assert_eq!(play(&mut abr, t0, 9.0, 1.5, 0.5), vec![2]);
        // Caught up: the failed probe doubled the hold, so no new probe 5 s later...
        let mut held = abr.clone();
        assert_eq!(play(&mut held, t0, 10.5, 5.0, 0.0), Vec::<usize>::new());
        // ...but after 8 s.
        assert_eq!(play(&mut abr, t0, 10.5, 8.0, 0.0), vec![0]);
        // Late for good: down one step at a time, SETTLE apart, to the lowest.
        assert_eq!(play(&mut abr, t0, 18.5, 4.0, 0.5), vec![2, 1]);
        assert!(abr.throughput() > 0.0);
    }

    #[test]
    fn one_rendition_never_switches() {
        let t0 = Instant::now();
        let mut abr = Abr::new(&[500_000], t0);
        assert!(play(&mut abr, t0, 0.0, 10.0, 0.0).is_empty());
        assert!(play(&mut abr, t0, 10.0, 3.0, 0.5).is_empty());
    }
}
