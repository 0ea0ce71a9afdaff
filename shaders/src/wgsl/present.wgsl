// The rendered image (two vec4 per pixel: colour over the background, then aux) drawn onto a
// colour target by one full-screen triangle, nearest-sampled when the render resolution is
// scaled below the target's. Colours are sRGB-encoded values, as in the PNGs the CLI writes:
// on an sRGB target they are decoded here so the hardware's encode gives back the same bytes.

struct Present {
    image: vec2<u32>,
    target_size: vec2<u32>,
    srgb_target: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Present;
@group(0) @binding(1) var<storage, read> image: array<vec4<f32>>;

@vertex
fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return vec4<f32>(uv * 2.0 - 1.0, 0.0, 1.0);
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let low = c / 12.92;
    let high = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(high, low, c <= vec3<f32>(0.04045));
}

@fragment
fn fs(@builtin(position) p: vec4<f32>) -> @location(0) vec4<f32> {
    let scale = vec2<f32>(params.image) / vec2<f32>(params.target_size);
    let at = min(vec2<u32>(p.xy * scale), params.image - vec2<u32>(1u));
    let c = clamp(image[2u * (at.y * params.image.x + at.x)].rgb, vec3<f32>(0.0), vec3<f32>(1.0));
    if params.srgb_target != 0u {
        return vec4<f32>(srgb_to_linear(c), 1.0);
    }
    return vec4<f32>(c, 1.0);
}
