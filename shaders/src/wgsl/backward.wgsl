// Backward pass of the forward renderer: from dLoss/d(pixel colour) to per-splat gradients
// (rasterize_backward, one workgroup per tile, compositing undone back to front), then to the
// Gaussians' parameters (project_backward, one invocation per splat). The forward math it
// differentiates is the shared one (`splat.wgsl`: falloff, covariance factor, EWA Jacobian,
// screen covariance; `record.wgsl`: record reading and SH colour); checked against finite
// differences of the CPU reference.
//
// Per-splat gradients (9 floats, in depth order): mean xy, conic abc, opacity, colour rgb.
// Parameter gradients use the Gaussian record layout (position, opacity logit, log scale,
// rotation xyzw, DC, SH rest).

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> ranges: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> tile_pairs: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> sorted: array<Splat>;
@group(0) @binding(4) var<storage, read> image: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> dl_dimage: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> splat_grads: array<atomic<u32>>;
@group(0) @binding(7) var<storage, read> gaussians: array<f32>;
@group(0) @binding(8) var<storage, read> depth_pairs: array<vec2<u32>>;
@group(0) @binding(9) var<storage, read_write> param_grads: array<f32>;

const SPLAT_GRADS: u32 = 9u;

fn add_float(at: u32, v: f32) {
    if v == 0.0 {
        return;
    }
    var old = atomicLoad(&splat_grads[at]);
    loop {
        let swapped = atomicCompareExchangeWeak(&splat_grads[at], old, bitcast<u32>(bitcast<f32>(old) + v));
        if swapped.exchanged {
            break;
        }
        old = swapped.old_value;
    }
}

// Splats per batch: their data and gradient accumulators live in workgroup memory, so the
// 256 pixels of a tile add into fast shared atomics and each splat reaches global memory once
// per tile.
const BATCH: u32 = 128u;

var<workgroup> batch_mean_conic: array<vec4<f32>, 128>;
var<workgroup> batch_conic_opacity: array<vec2<f32>, 128>;
var<workgroup> batch_color_index: array<vec4<f32>, 128>;
var<workgroup> batch_grads: array<atomic<u32>, 1152>;
var<workgroup> longest: atomic<u32>;
var<workgroup> longest_snapshot: u32;

fn add_shared(at: u32, v: f32) {
    if v == 0.0 {
        return;
    }
    var old = atomicLoad(&batch_grads[at]);
    loop {
        let swapped = atomicCompareExchangeWeak(&batch_grads[at], old, bitcast<u32>(bitcast<f32>(old) + v));
        if swapped.exchanged {
            break;
        }
        old = swapped.old_value;
    }
}

// Adds one pixel's (or one subgroup's) gradient of splat `base / SPLAT_GRADS` of the batch.
fn add_splat(base: u32, low: vec4<f32>, high: vec4<f32>, blue: f32) {
    add_shared(base, low.x);
    add_shared(base + 1u, low.y);
    add_shared(base + 2u, low.z);
    add_shared(base + 3u, low.w);
    add_shared(base + 4u, high.x);
    add_shared(base + 5u, high.y);
    add_shared(base + 6u, high.z);
    add_shared(base + 7u, high.w);
    add_shared(base + 8u, blue);
}

// `accumulate(base, hit, low, high, blue)` comes from accumulate_*.wgsl: per pixel with shared
// atomics everywhere, or summed over the subgroup first where subgroups exist.

@compute @workgroup_size(16, 16)
fn rasterize_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pixel = wid.xy * TILE + local.xy;
    let inside = pixel.x < view.size.x && pixel.y < view.size.y;
    let range = ranges[wid.y * view.tiles.x + wid.x];
    var count = 0u;
    var t_after = 1.0;
    var dl_dc = vec3<f32>(0.0);
    if inside {
        let p = pixel.y * view.size.x + pixel.x;
        let aux = image[2u * p + 1u];
        count = u32(aux.z);
        t_after = aux.y;
        dl_dc = dl_dimage[p].xyz;
    }
    var behind = t_after * view.background;
    let pf = vec2<f32>(pixel);
    if lid == 0u {
        atomicStore(&longest, 0u);
    }
    workgroupBarrier();
    atomicMax(&longest, count);
    workgroupBarrier();
    if lid == 0u {
        longest_snapshot = atomicLoad(&longest);
    }
    let n = workgroupUniformLoad(&longest_snapshot);
    // Batches of the tile's list from the back, as compositing is undone back to front.
    for (var b = (n + BATCH - 1u) / BATCH; b > 0u; b--) {
        let first = (b - 1u) * BATCH;
        let size = min(BATCH, n - first);
        if lid < size {
            let index = tile_pairs[range.x + first + lid].y;
            let s = sorted[index];
            batch_mean_conic[lid] = vec4<f32>(s.mean, s.conic.xy);
            batch_conic_opacity[lid] = vec2<f32>(s.conic.z, s.opacity);
            batch_color_index[lid] = vec4<f32>(s.color, bitcast<f32>(index));
        }
        for (var z = lid; z < BATCH * SPLAT_GRADS; z += 256u) {
            atomicStore(&batch_grads[z], 0u);
        }
        workgroupBarrier();
        for (var j = size; j > 0u; j--) {
            let at = j - 1u;
            let mc = batch_mean_conic[at];
            let co = batch_conic_opacity[at];
            let color = batch_color_index[at].xyz;
            let d = pf - mc.xy;
            let fo = falloff(d, vec3<f32>(mc.zw, co.x), co.y);
            let g = fo.g;
            let alpha = fo.alpha;
            let hit = first + at < count && fo.hit;
            // Gradients in the splat layout: mean xy, conic abc, opacity, colour rgb.
            var g_low = vec4<f32>(0.0);
            var g_high = vec4<f32>(0.0);
            var g_blue = 0.0;
            if hit {
                let t_before = t_after / (1.0 - alpha);
                let weight = alpha * t_before;
                let dl_dalpha = dot(dl_dc, color * t_before - behind / (1.0 - alpha));
                behind += color * weight;
                t_after = t_before;
                g_high.z = dl_dc.x * weight;
                g_high.w = dl_dc.y * weight;
                g_blue = dl_dc.z * weight;
                // A clamped alpha does not move with the Gaussian.
                if !fo.capped {
                    let dl_dpower = dl_dalpha * alpha;
                    g_low = dl_dpower * vec4<f32>(
                        mc.z * d.x + mc.w * d.y,
                        mc.w * d.x + co.x * d.y,
                        -0.5 * d.x * d.x,
                        -d.x * d.y,
                    );
                    g_high.x = dl_dpower * -0.5 * d.y * d.y;
                    g_high.y = dl_dalpha * g;
                }
            }
            accumulate(at * SPLAT_GRADS, hit, g_low, g_high, g_blue);
        }
        workgroupBarrier();
        if lid < size {
            let index = bitcast<u32>(batch_color_index[lid].w);
            for (var c = 0u; c < SPLAT_GRADS; c++) {
                add_float(index * SPLAT_GRADS + c, bitcast<f32>(atomicLoad(&batch_grads[lid * SPLAT_GRADS + c])));
            }
        }
        workgroupBarrier();
    }
}

// Gradients of the 16 SH basis functions with respect to the unit direction d.
fn sh_basis_grad(d: vec3<f32>) -> array<vec3<f32>, 16> {
    let x = d.x;
    let y = d.y;
    let z = d.z;
    let xx = x * x;
    let yy = y * y;
    let zz = z * z;
    return array<vec3<f32>, 16>(
        vec3<f32>(0.0),
        vec3<f32>(0.0, -SH_C1, 0.0),
        vec3<f32>(0.0, 0.0, SH_C1),
        vec3<f32>(-SH_C1, 0.0, 0.0),
        SH_C2[0] * vec3<f32>(y, x, 0.0),
        SH_C2[1] * vec3<f32>(0.0, z, y),
        SH_C2[2] * vec3<f32>(-2.0 * x, -2.0 * y, 4.0 * z),
        SH_C2[3] * vec3<f32>(z, 0.0, x),
        SH_C2[4] * vec3<f32>(2.0 * x, -2.0 * y, 0.0),
        SH_C3[0] * vec3<f32>(6.0 * x * y, 3.0 * xx - 3.0 * yy, 0.0),
        SH_C3[1] * vec3<f32>(y * z, x * z, x * y),
        SH_C3[2] * vec3<f32>(-2.0 * x * y, 4.0 * zz - xx - 3.0 * yy, 8.0 * y * z),
        SH_C3[3] * vec3<f32>(-6.0 * x * z, -6.0 * y * z, 6.0 * zz - 3.0 * xx - 3.0 * yy),
        SH_C3[4] * vec3<f32>(4.0 * zz - 3.0 * xx - yy, -2.0 * x * y, 8.0 * x * z),
        SH_C3[5] * vec3<f32>(2.0 * x * z, -2.0 * y * z, xx - yy),
        SH_C3[6] * vec3<f32>(3.0 * xx - 3.0 * yy, -6.0 * x * y, 0.0),
    );
}

fn grad_at(i: u32, k: u32) -> f32 {
    return bitcast<f32>(atomicLoad(&splat_grads[i * SPLAT_GRADS + k]));
}

@compute @workgroup_size(256)
fn project_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if i >= view.count {
        return;
    }
    let pair = depth_pairs[i];
    if pair.x == CULLED {
        return;
    }
    let gi = pair.y;
    let base = gi * view.stride;
    let p = record3(base + RECORD_POSITION);
    let q_in = record_rotation(base);
    let log_scale = record3(base + RECORD_LOG_SCALE);
    let g_mean = vec2<f32>(grad_at(i, 0u), grad_at(i, 1u));
    let g_conic = vec3<f32>(grad_at(i, 2u), grad_at(i, 3u), grad_at(i, 4u));
    let g_opacity = grad_at(i, 5u);
    let g_color = vec3<f32>(grad_at(i, 6u), grad_at(i, 7u), grad_at(i, 8u));

    // Opacity.
    let opacity = record_opacity(base);
    param_grads[base + RECORD_OPACITY] = g_opacity * opacity * (1.0 - opacity);

    // Colour: SH coefficients, and through the view direction into the position.
    let vd = view_direction(view, p);
    let dir = vd.dir;
    let len = vd.len;
    let basis = sh_basis(dir);
    let raw = record_colour(view, base, basis);
    let g_raw = select(vec3<f32>(0.0), g_color, raw + vec3<f32>(0.5) > vec3<f32>(0.0));
    let basis_grad = sh_basis_grad(dir);
    var g_dir = vec3<f32>(0.0);
    for (var k = 0u; k < min(view.sh_rest, 15u) + 1u; k++) {
        let at = select(base + RECORD_REST + 3u * (k - 1u), base + RECORD_DC, k == 0u);
        for (var c = 0u; c < 3u; c++) {
            param_grads[at + c] = g_raw[c] * basis[k];
        }
        g_dir += dot(g_raw, record_sh(base, k)) * basis_grad[k];
    }
    let g_view_p = select(vec3<f32>(0.0), (g_dir - dir * dot(dir, g_dir)) / len, len > 0.0);

    // Screen mean: t = W p + w, mean = f t.xy / t.z + c.
    let w = view_rotation(view);
    let t = (view.world_to_camera * vec4<f32>(p, 1.0)).xyz;
    let f = view.focal;
    var g_t = vec3<f32>(
        g_mean.x * f.x / t.z,
        g_mean.y * f.y / t.z,
        -(g_mean.x * f.x * t.x + g_mean.y * f.y * t.y) / (t.z * t.z),
    );

    // Conic = inverse(T Sigma T^T + low pass), T = J W.
    let rot = rotation_matrix(q_in);
    let scale = exp(log_scale);
    let m = covariance_factor(q_in, log_scale);
    let sigma = m * transpose(m);
    let ewa = ewa_jacobian(view, t);
    let tx = ewa.tangent.x;
    let ty = ewa.tangent.y;
    let tm = ewa.j * w;
    let abc = screen_covariance(tm, sigma);
    let a = abc.x;
    let b = abc.y;
    let c = abc.z;
    let det = a * c - b * b;
    // inv = [[A, B], [B, C]]; the conic's B appears twice in the quadratic form.
    let inv = mat2x2<f32>(vec2<f32>(c / det, -b / det), vec2<f32>(-b / det, a / det));
    let g_inv = mat2x2<f32>(vec2<f32>(g_conic.x, 0.5 * g_conic.y), vec2<f32>(0.5 * g_conic.y, g_conic.z));
    let g_cov2 = (inv * g_inv * inv) * -1.0;
    let g_cov = mat3x3<f32>(
        vec3<f32>(g_cov2[0].x, g_cov2[0].y, 0.0),
        vec3<f32>(g_cov2[1].x, g_cov2[1].y, 0.0),
        vec3<f32>(0.0, 0.0, 0.0),
    );
    // d/dT of T Sigma T^T with symmetric G and Sigma: 2 G T Sigma.
    let g_tm = 2.0 * g_cov * tm * sigma;
    let g_sigma = transpose(tm) * g_cov * tm;
    let g_j = g_tm * transpose(w);
    // J entries: (0,0) fx/tz, (1,1) fy/tz, (0,2) -fx tx/tz^2, (1,2) -fy ty/tz^2 (row, column).
    let tz2 = t.z * t.z;
    let tz3 = tz2 * t.z;
    g_t.z += g_j[0].x * (-f.x / tz2) + g_j[1].y * (-f.y / tz2);
    if ewa.clamped.x {
        // tx = +-lim tz: J02 = -+ fx lim / tz.
        g_t.z += g_j[2].x * (f.x * tx / tz3);
    } else {
        g_t.x += g_j[2].x * (-f.x / tz2);
        g_t.z += g_j[2].x * (2.0 * f.x * tx / tz3);
    }
    if ewa.clamped.y {
        g_t.z += g_j[2].y * (f.y * ty / tz3);
    } else {
        g_t.y += g_j[2].y * (-f.y / tz2);
        g_t.z += g_j[2].y * (2.0 * f.y * ty / tz3);
    }
    let g_p = transpose(w) * g_t + g_view_p;
    param_grads[base + RECORD_POSITION] = g_p.x;
    param_grads[base + RECORD_POSITION + 1u] = g_p.y;
    param_grads[base + RECORD_POSITION + 2u] = g_p.z;

    // Sigma = M M^T, M = R S.
    let g_m = 2.0 * g_sigma * m;
    var g_scale = vec3<f32>(0.0);
    for (var col = 0u; col < 3u; col++) {
        g_scale[col] = dot(g_m[col], rot[col]);
    }
    param_grads[base + RECORD_LOG_SCALE] = g_scale.x * scale.x;
    param_grads[base + RECORD_LOG_SCALE + 1u] = g_scale.y * scale.y;
    param_grads[base + RECORD_LOG_SCALE + 2u] = g_scale.z * scale.z;
    let g_r = mat3x3<f32>(g_m[0] * scale.x, g_m[1] * scale.y, g_m[2] * scale.z);

    // Rotation through the quaternion (x, y, z, w) and its normalisation.
    let len2 = dot(q_in, q_in);
    var qn = vec4<f32>(0.0, 0.0, 0.0, 1.0);
    var inv_len = 0.0;
    if len2 > 1e-24 && is_finite(len2) {
        inv_len = inverseSqrt(len2);
        qn = q_in * inv_len;
    }
    let x = qn.x;
    let y = qn.y;
    let z = qn.z;
    let qw = qn.w;
    // g(row, col) = g_r[col][row].
    let r00 = g_r[0].x;
    let r10 = g_r[0].y;
    let r20 = g_r[0].z;
    let r01 = g_r[1].x;
    let r11 = g_r[1].y;
    let r21 = g_r[1].z;
    let r02 = g_r[2].x;
    let r12 = g_r[2].y;
    let r22 = g_r[2].z;
    let g_qw = 2.0 * (-z * r01 + y * r02 + z * r10 - x * r12 - y * r20 + x * r21);
    let g_qx = 2.0 * (y * r01 + z * r02 + y * r10 - 2.0 * x * r11 - qw * r12 + z * r20 + qw * r21 - 2.0 * x * r22);
    let g_qy = 2.0 * (-2.0 * y * r00 + x * r01 + qw * r02 + x * r10 + z * r12 - qw * r20 + z * r21 - 2.0 * y * r22);
    let g_qz = 2.0 * (-2.0 * z * r00 - qw * r01 + x * r02 + qw * r10 - 2.0 * z * r11 + y * r12 + x * r20 + y * r21);
    let g_qn = vec4<f32>(g_qx, g_qy, g_qz, g_qw);
    let g_q = (g_qn - qn * dot(qn, g_qn)) * inv_len;
    param_grads[base + RECORD_ROTATION] = g_q.x;
    param_grads[base + RECORD_ROTATION + 1u] = g_q.y;
    param_grads[base + RECORD_ROTATION + 2u] = g_q.z;
    param_grads[base + RECORD_ROTATION + 3u] = g_q.w;
}
