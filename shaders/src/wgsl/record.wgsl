// Reading Gaussian records from the `gaussians` binding of the kernel this is prepended to (the
// projection and its backward pass), at the offsets `splat.wgsl` names.

fn record3(at: u32) -> vec3<f32> {
    return vec3<f32>(gaussians[at], gaussians[at + 1u], gaussians[at + 2u]);
}

fn record_rotation(base: u32) -> vec4<f32> {
    let at = base + RECORD_ROTATION;
    return vec4<f32>(gaussians[at], gaussians[at + 1u], gaussians[at + 2u], gaussians[at + 3u]);
}

fn record_opacity(base: u32) -> f32 {
    return 1.0 / (1.0 + exp(-gaussians[base + RECORD_OPACITY]));
}

// Unit direction from the camera to p (zero when they coincide) and the distance.
struct ViewDirection {
    dir: vec3<f32>,
    len: f32,
}

fn view_direction(view: View, p: vec3<f32>) -> ViewDirection {
    var out: ViewDirection;
    let d = p - view.camera_position;
    out.len = length(d);
    out.dir = select(vec3<f32>(0.0), d / out.len, out.len > 0.0);
    return out;
}

// Coefficient `k` of the SH expansion (0: DC) of record `base`.
fn record_sh(base: u32, k: u32) -> vec3<f32> {
    if k == 0u {
        return record3(base + RECORD_DC);
    }
    return record3(base + RECORD_REST + 3u * (k - 1u));
}

// The SH colour of record `base` for `basis`, before the +0.5 offset and the clamp at 0.
fn record_colour(view: View, base: u32, basis: array<f32, 16>) -> vec3<f32> {
    var color = vec3<f32>(0.0);
    for (var k = 0u; k < min(view.sh_rest, 15u) + 1u; k++) {
        color += record_sh(base, k) * basis[k];
    }
    return color;
}
