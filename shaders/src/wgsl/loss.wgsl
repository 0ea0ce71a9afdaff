// The training loss 0.8 L1 + 0.2 (1 - SSIM) of a rendered image against its photo, and its
// gradient with respect to the rendered colours, in five passes: the five SSIM moments blurred
// horizontally then vertically (11-tap Gaussian, sigma 1.5, renormalised at the borders exactly
// like `metrics::ssim`), the per-pixel SSIM and its partials, then the adjoint blurs. A sixth
// pass sums, per 16x16 tile, the loss and the squared error (for PSNR), so a caller reads a few
// kilobytes instead of the image.

struct Size {
    width: u32,
    height: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> size: Size;
// The renderer's image: two vec4 per pixel, colour in the first.
@group(0) @binding(1) var<storage, read> rendered: array<vec4<f32>>;
// The photo: one vec4 per pixel (rgb, unused).
@group(0) @binding(2) var<storage, read> target_rgb: array<vec4<f32>>;
// Four vec4 per pixel: per channel (x, y, xx, yy), then (xy r, xy g, xy b, 0).
@group(0) @binding(3) var<storage, read_write> moments_a: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> moments_b: array<vec4<f32>>;
// Three vec4 per pixel: per channel (d/dmx, d/dmxx, d/dmxy, SSIM).
@group(0) @binding(5) var<storage, read_write> partials_a: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> partials_b: array<vec4<f32>>;
// Per pixel: dLoss/d(r, g, b), and this pixel's share of the loss.
@group(0) @binding(7) var<storage, read_write> grad: array<vec4<f32>>;
// Per 16x16 tile, row-major: (squared error over r, g, b of both images clamped to [0, 1] as
// `metrics::mse` does, the tile's share of the loss).
@group(0) @binding(8) var<storage, read_write> totals: array<vec2<f32>>;

const RADIUS: i32 = 5;
const C1: f32 = 0.0001;
const C2: f32 = 0.0009;
const L1_WEIGHT: f32 = 0.8;
const SSIM_WEIGHT: f32 = 0.2;

fn weight(k: i32) -> f32 {
    // exp(-k^2 / (2 * 1.5^2)), normalised over the 11 taps.
    let w = array<f32, 6>(0.266011725, 0.213005538, 0.109360690, 0.036000772, 0.007598758, 0.001028380);
    return w[abs(k)];
}

fn index(x: i32, y: i32) -> u32 {
    return u32(y) * size.width + u32(x);
}

fn inside(x: i32, y: i32) -> bool {
    return x >= 0 && y >= 0 && x < i32(size.width) && y < i32(size.height);
}

// Sum of the weights whose taps fall inside [0, n) around position v.
fn norm(v: i32, n: i32) -> f32 {
    var z = 0.0;
    for (var k = -RADIUS; k <= RADIUS; k++) {
        if v + k >= 0 && v + k < n {
            z += weight(k);
        }
    }
    return z;
}

@compute @workgroup_size(16, 16)
fn moments_h(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = i32(gid.x);
    let y = i32(gid.y);
    if !inside(x, y) {
        return;
    }
    var m = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var k = -RADIUS; k <= RADIUS; k++) {
        if !inside(x + k, y) {
            continue;
        }
        let i = index(x + k, y);
        let a = rendered[2u * i].xyz;
        let b = target_rgb[i].xyz;
        let w = weight(k);
        for (var c = 0; c < 3; c++) {
            m[c] += w * vec4<f32>(a[c], b[c], a[c] * a[c], b[c] * b[c]);
        }
        m[3] += w * vec4<f32>(a * b, 0.0);
    }
    let z = norm(x, i32(size.width));
    let o = 4u * index(x, y);
    for (var c = 0u; c < 4u; c++) {
        moments_a[o + c] = m[c] / z;
    }
}

@compute @workgroup_size(16, 16)
fn moments_v(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = i32(gid.x);
    let y = i32(gid.y);
    if !inside(x, y) {
        return;
    }
    let z = norm(y, i32(size.height));
    let o = 4u * index(x, y);
    for (var c = 0u; c < 4u; c++) {
        var m = vec4<f32>(0.0);
        for (var k = -RADIUS; k <= RADIUS; k++) {
            if inside(x, y + k) {
                m += weight(k) * moments_a[4u * index(x, y + k) + c];
            }
        }
        moments_b[o + c] = m / z;
    }
}

@compute @workgroup_size(16, 16)
fn ssim_partials(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = i32(gid.x);
    let y = i32(gid.y);
    if !inside(x, y) {
        return;
    }
    let o = 4u * index(x, y);
    let xy = moments_b[o + 3u];
    // The adjoint of the vertical pass divides by its normaliser here.
    let zv = norm(y, i32(size.height));
    for (var c = 0u; c < 3u; c++) {
        let m = moments_b[o + c];
        let mx = m.x;
        let my = m.y;
        let vx = m.z - mx * mx;
        let vy = m.w - my * my;
        let cxy = xy[c] - mx * my;
        let a1 = 2.0 * mx * my + C1;
        let a2 = 2.0 * cxy + C2;
        let b1 = mx * mx + my * my + C1;
        let b2 = vx + vy + C2;
        let s = a1 * a2 / (b1 * b2);
        let d_vx = -s / b2;
        let d_cxy = 2.0 * a1 / (b1 * b2);
        let d_mx = 2.0 * my * a2 / (b1 * b2) - s * 2.0 * mx / b1 - 2.0 * mx * d_vx - my * d_cxy;
        partials_a[3u * index(x, y) + c] = vec4<f32>(d_mx / zv, d_vx / zv, d_cxy / zv, s);
    }
}

@compute @workgroup_size(16, 16)
fn back_v(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = i32(gid.x);
    let y = i32(gid.y);
    if !inside(x, y) {
        return;
    }
    let zh = norm(x, i32(size.width));
    for (var c = 0u; c < 3u; c++) {
        var g = vec3<f32>(0.0);
        for (var k = -RADIUS; k <= RADIUS; k++) {
            if inside(x, y + k) {
                g += weight(k) * partials_a[3u * index(x, y + k) + c].xyz;
            }
        }
        let s = partials_a[3u * index(x, y) + c].w;
        partials_b[3u * index(x, y) + c] = vec4<f32>(g / zh, s);
    }
}

@compute @workgroup_size(16, 16)
fn back_h(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = i32(gid.x);
    let y = i32(gid.y);
    if !inside(x, y) {
        return;
    }
    let i = index(x, y);
    let a = rendered[2u * i].xyz;
    let b = target_rgb[i].xyz;
    let n = f32(3u * size.width * size.height);
    var out = vec4<f32>(0.0);
    for (var c = 0u; c < 3u; c++) {
        var g = vec3<f32>(0.0);
        for (var k = -RADIUS; k <= RADIUS; k++) {
            if inside(x + k, y) {
                g += weight(k) * partials_b[3u * index(x + k, y) + c].xyz;
            }
        }
        let d_ssim = g.x + 2.0 * a[c] * g.y + b[c] * g.z;
        let diff = a[c] - b[c];
        out[c] = (L1_WEIGHT * sign(diff) - SSIM_WEIGHT * d_ssim) / n;
        out.w += (L1_WEIGHT * abs(diff) + SSIM_WEIGHT * (1.0 - partials_b[3u * i + c].w)) / n;
    }
    grad[i] = out;
}

var<workgroup> tile_sums: array<vec2<f32>, 256>;

// [0, 1], NaN as 0 (as `metrics::mse` reads pixels).
fn unit(c: vec3<f32>) -> vec3<f32> {
    return select(vec3<f32>(0.0), clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)), c == c);
}

@compute @workgroup_size(16, 16)
fn tile_totals(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) tile: vec3<u32>,
) {
    var v = vec2<f32>(0.0);
    if inside(i32(gid.x), i32(gid.y)) {
        let i = index(i32(gid.x), i32(gid.y));
        let d = unit(rendered[2u * i].xyz) - unit(target_rgb[i].xyz);
        v = vec2<f32>(dot(d, d), grad[i].w);
    }
    tile_sums[lane] = v;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half >>= 1u) {
        if lane < half {
            tile_sums[lane] += tile_sums[lane + half];
        }
        workgroupBarrier();
    }
    if lane == 0u {
        totals[tile.y * ((size.width + 15u) / 16u) + tile.x] = tile_sums[0];
    }
}
