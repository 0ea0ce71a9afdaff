// Projection math shared by every kernel that sees Gaussians: the player's forward pass and the
// trainer's forward and backward passes. The CPU reference (`reference.rs`) mirrors it in f64.

const NEAR: f32 = 0.01;
const LOW_PASS: f32 = 0.3;
const MIN_ALPHA: f32 = 0.003921569; // 1 / 255
const MAX_ALPHA: f32 = 0.99;
const MIN_TRANSMITTANCE: f32 = 1e-4;
const MAX_VARIANCE: f32 = 1e12;
const TILE: u32 = 16u;
const CULLED: u32 = 0xffffffffu;

// Camera, image and scene description of one render.
struct View {
    world_to_camera: mat4x4<f32>,
    focal: vec2<f32>,
    principal: vec2<f32>,
    size: vec2<u32>,
    tiles: vec2<u32>,
    camera_position: vec3<f32>,
    count: u32,
    background: vec3<f32>,
    stride: u32,
    sh_rest: u32,
    capacity: u32,
    // Jacobian clamp: 1.3 x the half field of view of the whole image (a strip of a larger image
    // keeps the whole image's).
    frustum: vec2<f32>,
}

// One Gaussian after projection (48 bytes).
struct Splat {
    mean: vec2<f32>,
    depth: f32,
    opacity: f32,
    conic: vec3<f32>,
    bbox_min: u32, // x | y << 16, inclusive pixel box of the footprint
    color: vec3<f32>,
    bbox_max: u32,
}

fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn all_finite3(v: vec3<f32>) -> bool {
    return is_finite(v.x) && is_finite(v.y) && is_finite(v.z);
}

fn rotation_matrix(q_in: vec4<f32>) -> mat3x3<f32> {
    var q = vec4<f32>(0.0, 0.0, 0.0, 1.0);
    let len2 = dot(q_in, q_in);
    if len2 > 1e-24 && is_finite(len2) {
        q = q_in * inverseSqrt(len2);
    }
    let x = q.x;
    let y = q.y;
    let z = q.z;
    let w = q.w;
    return mat3x3<f32>(
        vec3<f32>(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y)),
        vec3<f32>(2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + w * x)),
        vec3<f32>(2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y)),
    );
}

// Offsets (floats) of a Gaussian record's attributes: position, opacity logit, log scale,
// rotation (x y z w), DC colour, then `sh_rest` RGB coefficients.
const RECORD_POSITION: u32 = 0u;
const RECORD_OPACITY: u32 = 3u;
const RECORD_LOG_SCALE: u32 = 4u;
const RECORD_ROTATION: u32 = 7u;
const RECORD_DC: u32 = 11u;
const RECORD_REST: u32 = 14u;

// A projected footprint: inverse 2D covariance (a, b, c) and per-axis standard deviations.
struct Footprint {
    conic: vec3<f32>,
    sigma: vec2<f32>,
    ok: bool,
}

const CUTOFF_SIGMA: f32 = 3.0;

// M = R S: the 3D covariance is M M^T.
fn covariance_factor(rotation: vec4<f32>, log_scale: vec3<f32>) -> mat3x3<f32> {
    let s = exp(log_scale);
    return rotation_matrix(rotation) * mat3x3<f32>(
        vec3<f32>(s.x, 0.0, 0.0),
        vec3<f32>(0.0, s.y, 0.0),
        vec3<f32>(0.0, 0.0, s.z),
    );
}

// The EWA Jacobian at camera-space point t, its tangents clamped to the view's frustum limit.
struct Ewa {
    j: mat3x3<f32>,
    // The clamped tx, ty (camera-space x and y the Jacobian was evaluated at).
    tangent: vec2<f32>,
    clamped: vec2<bool>,
}

fn ewa_jacobian(view: View, t: vec3<f32>) -> Ewa {
    var out: Ewa;
    let lim = view.frustum;
    let r = t.xy / t.z;
    out.clamped = vec2<bool>(r.x < -lim.x || r.x > lim.x, r.y < -lim.y || r.y > lim.y);
    out.tangent = clamp(r, -lim, lim) * t.z;
    let f = view.focal;
    out.j = mat3x3<f32>(
        vec3<f32>(f.x / t.z, 0.0, 0.0),
        vec3<f32>(0.0, f.y / t.z, 0.0),
        vec3<f32>(-f.x * out.tangent.x / (t.z * t.z), -f.y * out.tangent.y / (t.z * t.z), 0.0),
    );
    return out;
}

// The view's rotation (world to camera).
fn view_rotation(view: View) -> mat3x3<f32> {
    return mat3x3<f32>(view.world_to_camera[0].xyz, view.world_to_camera[1].xyz, view.world_to_camera[2].xyz);
}

// The screen covariance (a, b, c) of T Sigma T^T, T = J W, with the low-pass added.
fn screen_covariance(tm: mat3x3<f32>, sigma: mat3x3<f32>) -> vec3<f32> {
    let cov = tm * sigma * transpose(tm);
    return vec3<f32>(cov[0].x + LOW_PASS, cov[1].x, cov[1].y + LOW_PASS);
}

// EWA projection of the 3D covariance at camera-space point t; not ok when degenerate.
fn project_covariance(view: View, t: vec3<f32>, rotation: vec4<f32>, log_scale: vec3<f32>) -> Footprint {
    var out: Footprint;
    out.ok = false;
    let m = covariance_factor(rotation, log_scale);
    let abc = screen_covariance(ewa_jacobian(view, t).j * view_rotation(view), m * transpose(m));
    let a = abc.x;
    let b = abc.y;
    let c = abc.z;
    let det = a * c - b * b;
    if !(det > 0.0) || !is_finite(det) || !(a <= MAX_VARIANCE) || !(c <= MAX_VARIANCE) {
        return out;
    }
    out.conic = vec3<f32>(c / det, -b / det, a / det);
    out.sigma = sqrt(vec2<f32>(a, c));
    out.ok = true;
    return out;
}

// A splat's footprint at pixel offset d from its mean: the Gaussian's exponent, its alpha
// (capped at MAX_ALPHA), whether the pixel takes part in compositing, and whether the cap bit.
struct Falloff {
    power: f32,
    g: f32,
    alpha: f32,
    hit: bool,
    capped: bool,
}

fn falloff(d: vec2<f32>, conic: vec3<f32>, opacity: f32) -> Falloff {
    var out: Falloff;
    out.power = -0.5 * (conic.x * d.x * d.x + conic.z * d.y * d.y) - conic.y * d.x * d.y;
    out.g = exp(out.power);
    let raw = opacity * out.g;
    out.alpha = min(MAX_ALPHA, raw);
    out.capped = raw > MAX_ALPHA;
    out.hit = out.power <= 0.0 && out.power >= -0.5 * CUTOFF_SIGMA * CUTOFF_SIGMA && out.alpha >= MIN_ALPHA;
    return out;
}

const SH_C0: f32 = 0.28209479177387814;
const SH_C1: f32 = 0.4886025119029199;
const SH_C2: array<f32, 5> = array<f32, 5>(1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396);
const SH_C3: array<f32, 7> = array<f32, 7>(-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658, 1.445305721320277, -0.5900435899266435);

// The 16 real SH basis values of the 3DGS convention for unit direction d.
fn sh_basis(d: vec3<f32>) -> array<f32, 16> {
    let x = d.x;
    let y = d.y;
    let z = d.z;
    let xx = x * x;
    let yy = y * y;
    let zz = z * z;
    return array<f32, 16>(
        SH_C0,
        -SH_C1 * y,
        SH_C1 * z,
        -SH_C1 * x,
        SH_C2[0] * x * y,
        SH_C2[1] * y * z,
        SH_C2[2] * (2.0 * zz - xx - yy),
        SH_C2[3] * x * z,
        SH_C2[4] * (xx - yy),
        SH_C3[0] * y * (3.0 * xx - yy),
        SH_C3[1] * x * y * z,
        SH_C3[2] * y * (4.0 * zz - xx - yy),
        SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
        SH_C3[4] * x * (4.0 * zz - xx - yy),
        SH_C3[5] * z * (xx - yy),
        SH_C3[6] * x * (xx - 3.0 * yy),
    );
}

fn pack_xy(x: u32, y: u32) -> u32 {
    return x | (y << 16u);
}

fn unpack_xy(v: u32) -> vec2<u32> {
    return vec2<u32>(v & 0xffffu, v >> 16u);
}
