//! Camera controls as plain state machines, engine-free so gestures can be fed and checked in
//! tests: an orbit view (orbit, pan, zoom, reset) and the touch-gesture recogniser that drives
//! it on phones (one finger orbits, two fingers pinch-zoom and pan, a double tap resets).

use std::collections::BTreeMap;

use glam::{DVec3, Vec2, Vec3};
use splatcast_shaders::Camera;
use splatcast_shaders::orbit::{Orbit, Up};

/// Degrees of orbit per pixel dragged.
const DEGREES_PER_PIXEL: f64 = 0.3;
/// Nearest and farthest zoom, in scene radii.
const DISTANCE: [f64; 2] = [0.05, 50.0];
/// Two taps closer than this in time (s) and space (px) make a double tap.
const DOUBLE_TAP: (f64, f32) = (0.3, 40.0);
/// A touch that moves farther than this (px) is a drag, not a tap.
const TAP_SLOP: f32 = 12.0;

/// A camera orbiting a point of the scene.
#[derive(Clone, Debug, PartialEq)]
pub struct OrbitView {
    /// Angles, distance and field of view.
    pub orbit: Orbit,
    /// The point looked at.
    pub centre: Vec3,
    /// Scene radius (distances are in these units).
    pub radius: f32,
    /// World up.
    pub up: Up,
    home: (Orbit, Vec3),
}

impl OrbitView {
    /// A view of a scene with this centre and radius; `reset` returns here.
    pub fn new(centre: Vec3, radius: f32, up: Up, orbit: Orbit) -> Self {
        Self {
            orbit,
            centre,
            radius,
            up,
            home: (orbit, centre),
        }
    }

    /// The camera for a `width`×`height` picture.
    pub fn camera(&self, width: u32, height: u32) -> Camera {
        self.orbit.camera(
            self.centre,
            self.radius,
            self.up,
            width.max(1),
            height.max(1),
        )
    }

    /// Turns the view by a drag of `delta` pixels.
    pub fn rotate(&mut self, delta: Vec2) {
        self.orbit.azimuth -= delta.x as f64 * DEGREES_PER_PIXEL;
        self.orbit.elevation =
            (self.orbit.elevation + delta.y as f64 * DEGREES_PER_PIXEL).clamp(-89.0, 89.0);
    }

    /// Moves closer (`factor` < 1) or farther.
    pub fn zoom(&mut self, factor: f64) {
        if factor.is_finite() && factor > 0.0 {
            self.orbit.distance = (self.orbit.distance * factor).clamp(DISTANCE[0], DISTANCE[1]);
        }
    }

    /// Slides the view so the scene follows a drag of `delta` pixels in a `height`-pixel view.
    pub fn pan(&mut self, delta: Vec2, height: u32) {
        let camera = self.camera(height.max(1), height.max(1));
        let rotation = camera.rotation();
        let (right, down) = (rotation.row(0), rotation.row(1));
        let metres_per_pixel = self.orbit.distance * self.radius as f64 / camera.fy;
        let shift: DVec3 = (right * delta.x as f64 + down * delta.y as f64) * metres_per_pixel;
        self.centre -= shift.as_vec3();
    }

    /// Back to the initial view.
    pub fn reset(&mut self) {
        (self.orbit, self.centre) = self.home;
    }
}

/// What a gesture asks of the view.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gesture {
    /// Orbit by a drag in pixels.
    Rotate(Vec2),
    /// Pan by a drag in pixels.
    Pan(Vec2),
    /// Multiply the distance.
    Zoom(f64),
    /// Back to the initial view.
    Reset,
}

impl Gesture {
    /// Applies the gesture to `view` (of `height` pixels).
    pub fn apply(self, view: &mut OrbitView, height: u32) {
        match self {
            Gesture::Rotate(d) => view.rotate(d),
            Gesture::Pan(d) => view.pan(d, height),
            Gesture::Zoom(f) => view.zoom(f),
            Gesture::Reset => view.reset(),
        }
    }
}

/// Turns touch events into gestures.
#[derive(Debug, Default)]
pub struct TouchGestures {
    /// Active touches: id → (where it started, where it is).
    touches: BTreeMap<u64, (Vec2, Vec2)>,
    /// The last tap: time and place.
    last_tap: Option<(f64, Vec2)>,
    /// Whether more than one finger touched since all were lifted (then it is no tap).
    multi: bool,
}

impl TouchGestures {
    /// A finger touched down at `at`.
    pub fn start(&mut self, id: u64, at: Vec2) {
        self.touches.insert(id, (at, at));
        self.multi |= self.touches.len() > 1;
    }

    /// A finger moved to `at`.
    pub fn moved(&mut self, id: u64, at: Vec2) -> Vec<Gesture> {
        let before: Vec<Vec2> = self.touches.values().map(|t| t.1).collect();
        let Some(touch) = self.touches.get_mut(&id) else {
            return Vec::new();
        };
        let delta = at - touch.1;
        touch.1 = at;
        match before.len() {
            1 => vec![Gesture::Rotate(delta)],
            2 => {
                let after: Vec<Vec2> = self.touches.values().map(|t| t.1).collect();
                let spread = |p: &[Vec2]| p[0].distance(p[1]);
                let centre = |p: &[Vec2]| (p[0] + p[1]) * 0.5;
                let mut out = vec![Gesture::Pan(centre(&after) - centre(&before))];
                if spread(&after) > 1.0 && spread(&before) > 1.0 {
                    out.push(Gesture::Zoom((spread(&before) / spread(&after)) as f64));
                }
                out
            }
            _ => Vec::new(),
        }
    }

    /// A finger lifted (or the touch was cancelled) at time `t` seconds.
    pub fn end(&mut self, id: u64, t: f64) -> Vec<Gesture> {
        let Some((start, last)) = self.touches.remove(&id) else {
            return Vec::new();
        };
        let tap = !self.multi && self.touches.is_empty() && start.distance(last) <= TAP_SLOP;
        if self.touches.is_empty() {
            self.multi = false;
        }
        if !tap {
            return Vec::new();
        }
        let double = self
            .last_tap
            .is_some_and(|(t0, p0)| t - t0 <= DOUBLE_TAP.0 && p0.distance(last) <= DOUBLE_TAP.1);
        if double {
            self.last_tap = None;
            vec![Gesture::Reset]
        } else {
            self.last_tap = Some((t, last));
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> OrbitView {
        OrbitView::new(Vec3::ZERO, 1.0, Up::NegY, Orbit::default())
    }

    #[test]
    fn one_finger_orbits_two_fingers_pinch_and_pan_double_tap_resets() {
        let mut g = TouchGestures::default();
        let mut v = view();
        g.start(1, Vec2::new(100.0, 100.0));
        for x in [110.0, 120.0, 130.0] {
            for gesture in g.moved(1, Vec2::new(x, 100.0)) {
                gesture.apply(&mut v, 480);
            }
        }
        assert!(g.end(1, 0.0).is_empty());
        assert!(
            (v.orbit.azimuth - (-9.0)).abs() < 1e-9,
            "{}",
            v.orbit.azimuth
        );

        // Pinch out: the fingers spread from 100 px to 200 px apart → twice as close.
        g.start(2, Vec2::new(200.0, 200.0));
        g.start(3, Vec2::new(300.0, 200.0));
        let before = v.orbit.distance;
        for gesture in g.moved(3, Vec2::new(400.0, 200.0)) {
            gesture.apply(&mut v, 480);
        }
        assert!((v.orbit.distance - before / 2.0).abs() < 1e-9);
        // Both fingers move down together: a pan; the centre moves, the angles do not.
        let (centre, azimuth) = (v.centre, v.orbit.azimuth);
        let mut pans = g.moved(2, Vec2::new(200.0, 260.0));
        pans.extend(g.moved(3, Vec2::new(400.0, 260.0)));
        assert!(
            pans.iter()
                .any(|p| matches!(p, Gesture::Pan(d) if d.y > 0.0))
        );
        for gesture in pans {
            gesture.apply(&mut v, 480);
        }
        assert!(v.centre.distance(centre) > 1e-3);
        assert_eq!(v.orbit.azimuth, azimuth);
        assert!(g.end(2, 1.0).is_empty() && g.end(3, 1.0).is_empty());

        // Two quick taps in one place: back home.
        g.start(4, Vec2::new(50.0, 50.0));
        assert!(g.end(4, 2.0).is_empty());
        g.start(5, Vec2::new(55.0, 52.0));
        let reset = g.end(5, 2.2);
        assert_eq!(reset, vec![Gesture::Reset]);
        reset[0].apply(&mut v, 480);
        assert_eq!(v, view());
        // Slow taps are not a double tap.
        g.start(6, Vec2::new(50.0, 50.0));
        g.end(6, 5.0);
        g.start(7, Vec2::new(50.0, 50.0));
        assert!(g.end(7, 5.5).is_empty());
    }

    #[test]
    fn panning_follows_the_finger_in_the_picture() {
        let mut v = view();
        let (w, h) = (640, 480);
        let cam = v.camera(w, h);
        let project = |c: &Camera, p: Vec3| {
            let q = c.world_to_camera.transform_point3(p.as_dvec3());
            Vec2::new(
                (c.fx * q.x / q.z + c.cx) as f32,
                (c.fy * q.y / q.z + c.cy) as f32,
            )
        };
        let before = project(&cam, Vec3::ZERO);
        v.pan(Vec2::new(40.0, -25.0), h);
        let after = project(&v.camera(w, h), Vec3::ZERO);
        assert!(
            (after - before - Vec2::new(40.0, -25.0)).length() < 0.5,
            "{before} {after}"
        );
        v.zoom(1e-9);
        assert_eq!(v.orbit.distance, DISTANCE[0]);
        v.rotate(Vec2::new(0.0, 1e6));
        assert_eq!(v.orbit.elevation, 89.0);
    }
}
