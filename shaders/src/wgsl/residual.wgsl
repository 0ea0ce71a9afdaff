// Residual frames (QUEEN-style): a frame is learnt as a residual on the previous frame's
// *decoded* Gaussians (`reference`). Adam moves a latent copy; what is rendered is the
// reference plus the latent's residual quantised to the codec's step (straight-through: the
// gradient of the rendered record is the latent's). Per-Gaussian gates keep static Gaussians
// exactly equal to the reference, so the planes repeat and AV1 codes them as skipped blocks.
//
// `aux` holds, in order: the quantisation step per record slot (`stride` floats, 0 = not
// quantised), the rate weight per slot (`stride` floats: an L1 penalty on the residual), and
// one gate per Gaussian (0 = frozen).

struct Residual {
    count: u32,
    stride: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> residual: Residual;
@group(0) @binding(1) var<storage, read_write> target_records: array<f32>;
@group(0) @binding(2) var<storage, read> latent: array<f32>;
@group(0) @binding(3) var<storage, read> reference: array<f32>;
@group(0) @binding(4) var<storage, read> aux: array<f32>;

fn float_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 256u;
}

fn gate(k: u32) -> f32 {
    return aux[2u * residual.stride + k];
}

// Before Adam: frozen Gaussians get no gradient (their moments stay zero, so the latent does
// not move); the others get the rate term's gradient, weight · sign(residual). Non-finite
// gradients count as 0. `target_records` is the gradient buffer here.
@compute @workgroup_size(256)
fn gate_gradients(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = float_index(gid, groups);
    if i >= residual.count * residual.stride {
        return;
    }
    let k = i / residual.stride;
    let slot = i % residual.stride;
    var g = target_records[i];
    if (bitcast<u32>(g) & 0x7f800000u) == 0x7f800000u {
        g = 0.0;
    }
    if gate(k) == 0.0 {
        target_records[i] = 0.0;
        return;
    }
    target_records[i] = g + aux[residual.stride + slot] * sign(latent[i] - reference[i]);
}

// After Adam: the record rendered next, reference + Q(latent − reference) for open gates and
// the reference itself for frozen ones. `target_records` is the rendered Gaussian buffer here.
@compute @workgroup_size(256)
fn compose(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = float_index(gid, groups);
    if i >= residual.count * residual.stride {
        return;
    }
    let k = i / residual.stride;
    let r = reference[i];
    if gate(k) == 0.0 {
        target_records[i] = r;
        return;
    }
    let step = aux[i % residual.stride];
    var d = latent[i] - r;
    if step > 0.0 {
        d = round(d / step) * step;
    }
    target_records[i] = r + d;
}

// Gate initialisation: how strongly each Gaussian's position and colour are pulled by the
// photos, summed over views (QUEEN compares this between the new frame's photos and the
// previous frame's: Gaussians pulled harder by the new ones are the ones that move).
@group(0) @binding(5) var<storage, read> gradients: array<f32>;
@group(0) @binding(6) var<storage, read_write> sensitivity: array<vec2<f32>>;

@compute @workgroup_size(256)
fn accumulate_sensitivity(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let k = float_index(gid, groups);
    if k >= residual.count {
        return;
    }
    let base = k * residual.stride;
    let p = base + RECORD_POSITION;
    let d = base + RECORD_DC;
    let position = vec3<f32>(gradients[p], gradients[p + 1u], gradients[p + 2u]);
    let colour = vec3<f32>(gradients[d], gradients[d + 1u], gradients[d + 2u]);
    var add = vec2<f32>(length(position), length(colour));
    if !all(add == add) || any(abs(add) > vec2<f32>(1e30)) {
        add = vec2<f32>(0.0);
    }
    sensitivity[k] += add;
}
