// Adam on the Gaussian records: one invocation per float, the learning rate chosen by the
// float's slot in its record (position, opacity, scale, rotation, DC, SH rest). SH-rest slots at
// or beyond `active_rest` do not move yet (degree ramp-up). Non-finite gradients count as 0.

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
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> adam: Adam;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> first: array<f32>;
@group(0) @binding(4) var<storage, read_write> second: array<f32>;

fn learning_rate(slot: u32) -> f32 {
    if slot < 3u {
        return adam.lr_a.x;
    }
    if slot == 3u {
        return adam.lr_a.y;
    }
    if slot < 7u {
        return adam.lr_a.z;
    }
    if slot < 11u {
        return adam.lr_a.w;
    }
    if slot < 14u {
        return adam.lr_b.x;
    }
    if slot - 14u < adam.active_rest {
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
    let b1 = adam.lr_b.z;
    let b2 = adam.lr_b.w;
    let m = b1 * first[i] + (1.0 - b1) * g;
    let v = b2 * second[i] + (1.0 - b2) * g * g;
    first[i] = m;
    second[i] = v;
    let step = learning_rate(i % adam.stride) * (m * adam.correction1) / (sqrt(v * adam.correction2) + adam.epsilon);
    params[i] -= step;
}
