// Adam on the Gaussian records: one invocation per float, the learning rate chosen by the
// float's slot in its record (position, opacity, scale, rotation, DC, SH rest). SH-rest slots at
// or beyond `active_rest` do not move yet (degree ramp-up). Non-finite gradients count as 0.
// The 3DGS-MCMC terms ride along: L1 regularisation of opacity and scale (so Gaussians nobody
// sees fade out and get relocated), and `perturb`, noise on the positions of nearly transparent
// Gaussians shaped by their covariance (so they explore instead of idling).

struct Adam {
    // position, opacity, log scale, rotation
    lr_a: vec4<f32>,
    // DC, SH rest, beta1, beta2
    lr_b: vec4<f32>,
    epsilon: f32,
    // 1 / (1 - beta1^t), 1 / (1 - beta2^t)
    correction1: f32,
    correction2: f32,
    count: u32,
    stride: u32,
    active_rest: u32,
    // Gradient of the regularisers per unit of opacity and of scale.
    opacity_reg: f32,
    scale_reg: f32,
    // Position noise per unit of covariance; 0 turns it off.
    noise: f32,
    seed: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> adam: Adam;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> first: array<f32>;
@group(0) @binding(4) var<storage, read_write> second: array<f32>;

fn learning_rate(slot: u32) -> f32 {
    if slot < RECORD_OPACITY {
        return adam.lr_a.x;
    }
    if slot < RECORD_LOG_SCALE {
        return adam.lr_a.y;
    }
    if slot < RECORD_ROTATION {
        return adam.lr_a.z;
    }
    if slot < RECORD_DC {
        return adam.lr_a.w;
    }
    if slot < RECORD_REST {
        return adam.lr_b.x;
    }
    if slot - RECORD_REST < adam.active_rest {
        return adam.lr_b.y;
    }
    return 0.0;
}

@compute @workgroup_size(256)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if i >= adam.count * adam.stride {
        return;
    }
    var g = grads[i];
    if (bitcast<u32>(g) & 0x7f800000u) == 0x7f800000u {
        g = 0.0;
    }
    let slot = i % adam.stride;
    if slot == RECORD_OPACITY {
        let o = 1.0 / (1.0 + exp(-params[i]));
        g += adam.opacity_reg * o * (1.0 - o);
    } else if slot >= RECORD_LOG_SCALE && slot < RECORD_ROTATION {
        g += adam.scale_reg * exp(params[i]);
    }
    let b1 = adam.lr_b.z;
    let b2 = adam.lr_b.w;
    let m = b1 * first[i] + (1.0 - b1) * g;
    let v = b2 * second[i] + (1.0 - b2) * g * g;
    first[i] = m;
    second[i] = v;
    let step = learning_rate(slot) * (m * adam.correction1) / (sqrt(v * adam.correction2) + adam.epsilon);
    params[i] -= step;
}

// PCG hash: a per-Gaussian, per-step random source.
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn uniform01(h: u32) -> f32 {
    return (f32(h >> 8u) + 0.5) / 16777216.0;
}

@compute @workgroup_size(256)
fn perturb(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if i >= adam.count {
        return;
    }
    let base = i * adam.stride;
    let o = 1.0 / (1.0 + exp(-params[base + RECORD_OPACITY]));
    // Only nearly transparent Gaussians move: ~0.6 at opacity 0, ~0.01 at 0.05.
    let gate = 1.0 / (1.0 + exp(-100.0 * (0.005 - o)));
    let r = base + RECORD_ROTATION;
    let rot = rotation_matrix(vec4<f32>(params[r], params[r + 1u], params[r + 2u], params[r + 3u]));
    let l = base + RECORD_LOG_SCALE;
    let s = exp(vec3<f32>(params[l], params[l + 1u], params[l + 2u]));
    var h = pcg(i ^ pcg(adam.seed));
    var z = vec3<f32>(0.0);
    for (var k = 0u; k < 3u; k++) {
        // Box-Muller.
        let h1 = pcg(h);
        h = pcg(h1);
        z[k] = sqrt(-2.0 * log(uniform01(h1))) * cos(6.2831853 * uniform01(h));
    }
    // Covariance times the normal sample: R S^2 R^T z.
    let step = rot * (s * s * (transpose(rot) * z)) * (gate * adam.noise);
    if all(step == step) && all(abs(step) < vec3<f32>(1e30)) {
        params[base] += step.x;
        params[base + 1u] += step.y;
        params[base + 2u] += step.z;
    }
}

// Relocation (3DGS-MCMC): the opacities gathered for the CPU to choose who moves, then each
// move (dead, source, shared opacity logit) copies the source's record onto the dead Gaussian,
// gives both the shared opacity, and forgets both moments.
@group(0) @binding(5) var<storage, read_write> opacities: array<f32>;
@group(0) @binding(6) var<storage, read> moves: array<vec4<u32>>;

@compute @workgroup_size(256)
fn gather_opacity(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if i < adam.count {
        opacities[i] = 1.0 / (1.0 + exp(-params[i * adam.stride + RECORD_OPACITY]));
    }
}

@compute @workgroup_size(256)
fn relocate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if i >= arrayLength(&moves) * adam.stride {
        return;
    }
    let m = moves[i / adam.stride];
    let k = i % adam.stride;
    let dst = m.x * adam.stride + k;
    let src = m.y * adam.stride + k;
    if k == RECORD_OPACITY {
        params[dst] = bitcast<f32>(m.z);
        params[src] = bitcast<f32>(m.z);
    } else {
        params[dst] = params[src];
    }
    first[dst] = 0.0;
    second[dst] = 0.0;
    first[src] = 0.0;
    second[src] = 0.0;
}
