// One workgroup per 16x16 tile: splats of the tile arrive in depth order, 256 at a time through
// workgroup memory; each invocation composites its pixel front to back and stops when its
// transmittance is spent; the workgroup stops when every pixel has.
// Output per pixel, two vec4: (rgb over background, alpha) and (depth, transmittance,
// contributing splats, 0).

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> ranges: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> tile_pairs: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> sorted: array<Splat>;
@group(0) @binding(4) var<storage, read_write> image: array<vec4<f32>>;

var<workgroup> mean_conic: array<vec4<f32>, 256>;
var<workgroup> conic_opacity: array<vec2<f32>, 256>;
var<workgroup> color_depth: array<vec4<f32>, 256>;
var<workgroup> done_count: atomic<u32>;
var<workgroup> done_snapshot: u32;

@compute @workgroup_size(16, 16)
fn rasterize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pixel = wid.xy * TILE + local.xy;
    let inside = pixel.x < view.size.x && pixel.y < view.size.y;
    let pf = vec2<f32>(pixel);
    let range = ranges[wid.y * view.tiles.x + wid.x];
    if lid == 0u {
        atomicStore(&done_count, 0u);
    }
    workgroupBarrier();
    var done = !inside;
    if done {
        atomicAdd(&done_count, 1u);
    }
    var transmittance = 1.0;
    var color = vec3<f32>(0.0);
    var depth = 0.0;
    var contributed = 0u;
    for (var batch = range.x; batch < range.y; batch += 256u) {
        workgroupBarrier();
        if lid == 0u {
            done_snapshot = atomicLoad(&done_count);
        }
        if workgroupUniformLoad(&done_snapshot) == 256u {
            break;
        }
        let j = batch + lid;
        if j < range.y {
            let s = sorted[tile_pairs[j].y];
            mean_conic[lid] = vec4<f32>(s.mean, s.conic.xy);
            conic_opacity[lid] = vec2<f32>(s.conic.z, s.opacity);
            color_depth[lid] = vec4<f32>(s.color, s.depth);
        }
        workgroupBarrier();
        let count = min(256u, range.y - batch);
        for (var k = 0u; k < count && !done; k++) {
            let cob = conic_opacity[k];
            let mc = mean_conic[k];
            let fo = falloff(pf - mc.xy, vec3<f32>(mc.zw, cob.x), cob.y);
            if !fo.hit {
                continue;
            }
            let alpha = fo.alpha;
            let next = transmittance * (1.0 - alpha);
            if next < MIN_TRANSMITTANCE {
                done = true;
                atomicAdd(&done_count, 1u);
                break;
            }
            let weight = alpha * transmittance;
            let cd = color_depth[k];
            color += cd.xyz * weight;
            depth += cd.w * weight;
            transmittance = next;
            contributed = batch + k + 1u - range.x;
        }
    }
    if inside {
        let p = 2u * (pixel.y * view.size.x + pixel.x);
        image[p] = vec4<f32>(color + transmittance * view.background, 1.0 - transmittance);
        image[p + 1u] = vec4<f32>(depth, transmittance, f32(contributed), 0.0);
    }
}
