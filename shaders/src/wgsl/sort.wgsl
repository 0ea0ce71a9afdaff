// Stable least-significant-digit radix sort of (key, value) pairs, 4 bits per pass, without
// subgroup operations: `count` builds a per-block digit histogram (digit-major), the scan
// kernels turn it into global offsets, `scatter` ranks each pair inside its block with a
// workgroup scan of packed 16-bit one-hot counters and writes it to its place.

struct SortPass {
    shift: u32,
}

@group(0) @binding(0) var<uniform> sort_pass: SortPass;
// [pairs to sort, histogram length]
@group(0) @binding(1) var<storage, read> info: array<u32>;
@group(0) @binding(2) var<storage, read> src: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> hist: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst: array<vec2<u32>>;

const WG: u32 = 256u;
const ITEMS: u32 = 8u;
const BLOCK: u32 = 2048u;
const RADIX: u32 = 16u;

var<workgroup> local_hist: array<atomic<u32>, 16>;

@compute @workgroup_size(256)
fn count(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let n = info[0];
    let blocks = (n + BLOCK - 1u) / BLOCK;
    if lid < RADIX {
        atomicStore(&local_hist[lid], 0u);
    }
    workgroupBarrier();
    let start = wid.x * BLOCK;
    for (var k = 0u; k < ITEMS; k++) {
        let i = start + k * WG + lid;
        if i < n {
            atomicAdd(&local_hist[(src[i].x >> sort_pass.shift) & 15u], 1u);
        }
    }
    workgroupBarrier();
    if lid < RADIX && wid.x < blocks {
        hist[lid * blocks + wid.x] = atomicLoad(&local_hist[lid]);
    }
}

var<workgroup> scan_lo: array<vec4<u32>, 256>;
var<workgroup> scan_hi: array<vec4<u32>, 256>;
var<workgroup> running: array<u32, 16>;

fn digit_count(lo: vec4<u32>, hi: vec4<u32>, d: u32) -> u32 {
    let v = select(lo, hi, d >= 8u);
    return (v[(d >> 1u) & 3u] >> ((d & 1u) * 16u)) & 0xffffu;
}

@compute @workgroup_size(256)
fn scatter(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let n = info[0];
    let blocks = (n + BLOCK - 1u) / BLOCK;
    if lid < RADIX {
        running[lid] = hist[lid * blocks + wid.x];
    }
    let start = wid.x * BLOCK;
    for (var k = 0u; k < ITEMS; k++) {
        if start + k * WG >= n {
            break;
        }
        let i = start + k * WG + lid;
        let valid = i < n;
        var item = vec2<u32>(0u);
        var d = 0u;
        var lo = vec4<u32>(0u);
        var hi = vec4<u32>(0u);
        if valid {
            item = src[i];
            d = (item.x >> sort_pass.shift) & 15u;
            let bit = 1u << ((d & 1u) * 16u);
            let word = (d >> 1u) & 3u;
            if d < 8u {
                lo[word] = bit;
            } else {
                hi[word] = bit;
            }
        }
        scan_lo[lid] = lo;
        scan_hi[lid] = hi;
        workgroupBarrier();
        for (var off = 1u; off < WG; off <<= 1u) {
            var a = vec4<u32>(0u);
            var b = vec4<u32>(0u);
            if lid >= off {
                a = scan_lo[lid - off];
                b = scan_hi[lid - off];
            }
            workgroupBarrier();
            scan_lo[lid] += a;
            scan_hi[lid] += b;
            workgroupBarrier();
        }
        if valid {
            dst[running[d] + digit_count(scan_lo[lid], scan_hi[lid], d) - 1u] = item;
        }
        workgroupBarrier();
        if lid < RADIX {
            running[lid] += digit_count(scan_lo[WG - 1u], scan_hi[WG - 1u], lid);
        }
        workgroupBarrier();
    }
}
