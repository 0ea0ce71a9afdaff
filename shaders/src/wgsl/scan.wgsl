// Exclusive prefix sum of `info[1]` u32 values in place, any length: `reduce` sums blocks of
// 2048, `scan_sums` scans the block sums in one workgroup, `apply` scans each block with its
// offset. `scan_single` does short arrays (radix histograms) in one dispatch.

@group(0) @binding(0) var<storage, read> info: array<u32>;
@group(0) @binding(1) var<storage, read_write> data: array<u32>;
@group(0) @binding(2) var<storage, read_write> sums: array<u32>;

const WG: u32 = 256u;
const ITEMS: u32 = 8u;
const BLOCK: u32 = 2048u;

var<workgroup> partial: array<u32, 256>;

// Exclusive scan of one value per invocation; partial[WG - 1] holds the inclusive total after.
fn workgroup_exclusive_scan(lid: u32, value: u32) -> u32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var off = 1u; off < WG; off <<= 1u) {
        var other = 0u;
        if lid >= off {
            other = partial[lid - off];
        }
        workgroupBarrier();
        partial[lid] += other;
        workgroupBarrier();
    }
    return partial[lid] - value;
}

fn load(i: u32, n: u32) -> u32 {
    if i < n {
        return data[i];
    }
    return 0u;
}

@compute @workgroup_size(256)
fn reduce(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let n = info[1];
    var total = 0u;
    for (var k = 0u; k < ITEMS; k++) {
        total += load(wid.x * BLOCK + k * WG + lid, n);
    }
    workgroup_exclusive_scan(lid, total);
    if lid == WG - 1u {
        sums[wid.x] = partial[WG - 1u];
    }
}

@compute @workgroup_size(256)
fn scan_sums(@builtin(local_invocation_index) lid: u32) {
    let blocks = (info[1] + BLOCK - 1u) / BLOCK;
    let per = (blocks + WG - 1u) / WG;
    let start = lid * per;
    let end = min(start + per, blocks);
    var total = 0u;
    for (var i = start; i < end; i++) {
        total += sums[i];
    }
    var running = workgroup_exclusive_scan(lid, total);
    for (var i = start; i < end; i++) {
        let v = sums[i];
        sums[i] = running;
        running += v;
    }
}

@compute @workgroup_size(256)
fn apply(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let n = info[1];
    let start = wid.x * BLOCK + lid * ITEMS;
    var values: array<u32, 8>;
    var total = 0u;
    for (var k = 0u; k < ITEMS; k++) {
        values[k] = load(start + k, n);
        total += values[k];
    }
    var running = sums[wid.x] + workgroup_exclusive_scan(lid, total);
    for (var k = 0u; k < ITEMS; k++) {
        if start + k < n {
            data[start + k] = running;
        }
        running += values[k];
    }
}

@compute @workgroup_size(256)
fn scan_single(@builtin(local_invocation_index) lid: u32) {
    let n = info[1];
    let per = (n + WG - 1u) / WG;
    let start = lid * per;
    let end = min(start + per, n);
    var total = 0u;
    for (var i = start; i < end; i++) {
        total += data[i];
    }
    var running = workgroup_exclusive_scan(lid, total);
    for (var i = start; i < end; i++) {
        let v = data[i];
        data[i] = running;
        running += v;
    }
}
