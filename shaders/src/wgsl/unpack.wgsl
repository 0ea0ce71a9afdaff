// Decoded AV1 planes of one frame + the GOP's side data -> Gaussian records in the layout the
// projection kernel reads, one invocation per Gaussian. Mirrors `splatcast_protocol::gop::unpack`.

struct Params {
    box_min: vec3<f32>,
    count: u32,
    box_max: vec3<f32>,
    channels: u32,
    stride: u32,
    sh_rest: u32,
    grid_width: u32,
    first: u32,      // output index of this stream's first Gaussian
    offset: vec3<f32>, // added to every position (streams placed side by side)
    _pad: u32,
}

// One coded channel: where its samples are and how to dequantize them.
struct Channel {
    kind: u32, // 0 position, 1 rotation, 2 scale, 3 colour + opacity, 4 SH rest
    index: u32,     // channel within the attribute
    origin: u32,    // first sample of the channel's tile in `planes` (u16 index)
    row: u32,       // samples per picture row
    lo: f32,
    hi: f32,
    max_code: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> planes: array<u32>; // u16 samples, two per word
// Per Gaussian: its pixel, then its 16-bit keyframe position (x | y << 16, z).
@group(0) @binding(2) var<storage, read> gop: array<u32>;
@group(0) @binding(3) var<storage, read> channels: array<Channel>;
@group(0) @binding(4) var<storage, read_write> gaussians: array<f32>;

fn sample(at: u32) -> f32 {
    return f32((planes[at >> 1u] >> ((at & 1u) * 16u)) & 0xffffu);
}

fn logit(p: f32) -> f32 {
    let q = clamp(p, 1e-6, 1.0 - 1e-6);
    return log(q / (1.0 - q));
}

@compute @workgroup_size(256)
fn unpack(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if i >= params.count {
        return;
    }
    let pixel = gop[3u * i];
    let xy = gop[3u * i + 1u];
    let q16 = vec3<f32>(f32(xy & 0xffffu), f32(xy >> 16u), f32(gop[3u * i + 2u]));
    var position = params.offset + params.box_min + (params.box_max - params.box_min) * (q16 / 65535.0);
    var rotation = vec4<f32>(0.0);
    let px = pixel % params.grid_width;
    let py = pixel / params.grid_width;
    let base = (params.first + i) * params.stride;
    // SH coefficients the stream does not code stay zero (a shared output may hold more).
    for (var k = 14u; k < params.stride; k++) {
        gaussians[base + k] = 0.0;
    }
    for (var c = 0u; c < params.channels; c++) {
        let ch = channels[c];
        let v = ch.lo + (ch.hi - ch.lo) * (sample(ch.origin + py * ch.row + px) / ch.max_code);
        switch ch.kind {
            case 0u: {
                position[ch.index] += v;
            }
            case 1u: {
                rotation[ch.index] = v;
            }
            case 2u: {
                gaussians[base + 4u + ch.index] = v;
            }
            case 3u: {
                if ch.index < 3u {
                    gaussians[base + 11u + ch.index] = v;
                } else {
                    gaussians[base + 3u] = logit(v);
                }
            }
            default: {
                gaussians[base + 14u + ch.index] = v;
            }
        }
    }
    // Canonical rotation: unit length, w >= 0, identity when degenerate.
    let len = length(rotation);
    if len < 1e-12 || !(len <= 3.4e38) {
        rotation = vec4<f32>(0.0, 0.0, 0.0, 1.0);
    } else {
        rotation = rotation / len;
        if rotation.w < 0.0 {
            rotation = -rotation;
        }
    }
    gaussians[base] = position.x;
    gaussians[base + 1u] = position.y;
    gaussians[base + 2u] = position.z;
    gaussians[base + 7u] = rotation.x;
    gaussians[base + 8u] = rotation.y;
    gaussians[base + 9u] = rotation.z;
    gaussians[base + 10u] = rotation.w;
}
