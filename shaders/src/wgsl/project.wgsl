// Per Gaussian: cull, project, evaluate SH, and emit a 24-bit depth key for the global depth sort.
// Gaussian records are `stride` floats: position, opacity logit, log scale, rotation (x y z w),
// DC colour, then `sh_rest` RGB coefficients.

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> gaussians: array<f32>;
@group(0) @binding(2) var<storage, read_write> splats: array<Splat>;
@group(0) @binding(3) var<storage, read_write> depth_pairs: array<vec2<u32>>;

@compute @workgroup_size(256)
fn project(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if i >= view.count {
        return;
    }
    depth_pairs[i] = vec2<u32>(CULLED, i);
    let base = i * view.stride;
    let p = record3(base + RECORD_POSITION);
    let t = (view.world_to_camera * vec4<f32>(p, 1.0)).xyz;
    if !all_finite3(t) || !(t.z > NEAR) {
        return;
    }
    let opacity = record_opacity(base);
    if !(opacity >= MIN_ALPHA) {
        return;
    }
    let fp = project_covariance(view, t, record_rotation(base), record3(base + RECORD_LOG_SCALE));
    if !fp.ok {
        return;
    }
    // Beyond k sigma even the peak opacity falls below 1/255.
    let k = min(CUTOFF_SIGMA, sqrt(max(2.0 * log(opacity / MIN_ALPHA), 0.0)));
    let extent = k * fp.sigma;
    let mean = view.focal * t.xy / t.z + view.principal;
    let size = vec2<f32>(view.size);
    if mean.x + extent.x < -0.5 || mean.y + extent.y < -0.5 || mean.x - extent.x > size.x - 0.5 || mean.y - extent.y > size.y - 0.5 {
        return;
    }
    let color = max(record_colour(view, base, sh_basis(view_direction(view, p).dir)) + vec3<f32>(0.5), vec3<f32>(0.0));
    if !all_finite3(vec3<f32>(mean, opacity)) || !all_finite3(color) {
        return;
    }
    let lo = max(floor(mean - extent), vec2<f32>(0.0));
    let hi = min(max(ceil(mean + extent), vec2<f32>(0.0)), size - 1.0);
    var s: Splat;
    s.mean = mean;
    s.depth = t.z;
    s.opacity = opacity;
    s.conic = fp.conic;
    s.bbox_min = pack_xy(u32(lo.x), u32(lo.y));
    s.color = color;
    s.bbox_max = pack_xy(u32(hi.x), u32(hi.y));
    splats[i] = s;
    // 24-bit key: positive floats order like their bits; the low mantissa bits are dropped.
    depth_pairs[i] = vec2<u32>(bitcast<u32>(t.z) >> 8u, i);
}
