// Tile binning: after the depth sort, splats are gathered in depth order, each counts the 16x16
// tiles its box touches, an exclusive scan turns counts into offsets, and every splat writes one
// (tile, splat) pair per tile. A stable sort by tile then keeps depth order inside each tile.

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> depth_pairs: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> splats: array<Splat>;
@group(0) @binding(3) var<storage, read_write> sorted: array<Splat>;
@group(0) @binding(4) var<storage, read_write> offsets: array<u32>;
@group(0) @binding(5) var<storage, read_write> tile_pairs: array<vec2<u32>>;
// [pairs to sort (capped at capacity), sort histogram length, pairs wanted (uncapped)]
@group(0) @binding(6) var<storage, read_write> tile_info: array<u32>;
// Indirect dispatch sizes: tile sort blocks, tile ranges.
@group(0) @binding(7) var<storage, read_write> args: array<u32>;
@group(0) @binding(8) var<storage, read_write> ranges: array<vec2<u32>>;

const SORT_BLOCK: u32 = 2048u;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 256u;
}

fn tile_box(s: Splat) -> vec4<u32> {
    return vec4<u32>(unpack_xy(s.bbox_min) / TILE, unpack_xy(s.bbox_max) / TILE);
}

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i == 0u {
        offsets[view.count] = 0u;
    }
    if i >= view.count {
        return;
    }
    let pair = depth_pairs[i];
    if pair.x == CULLED {
        offsets[i] = 0u;
        return;
    }
    let s = splats[pair.y];
    sorted[i] = s;
    let b = tile_box(s);
    offsets[i] = (b.z - b.x + 1u) * (b.w - b.y + 1u);
}

@compute @workgroup_size(256)
fn emit(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= view.count {
        return;
    }
    var at = offsets[i];
    let end = min(offsets[i + 1u], view.capacity);
    if at >= end {
        return;
    }
    let b = tile_box(sorted[i]);
    for (var ty = b.y; ty <= b.w; ty++) {
        for (var tx = b.x; tx <= b.z; tx++) {
            if at >= end {
                return;
            }
            tile_pairs[at] = vec2<u32>(ty * view.tiles.x + tx, i);
            at++;
        }
    }
}

@compute @workgroup_size(1)
fn prepare() {
    let wanted = offsets[view.count];
    let n = min(wanted, view.capacity);
    let blocks = (n + SORT_BLOCK - 1u) / SORT_BLOCK;
    tile_info[0] = n;
    tile_info[1] = 16u * blocks;
    tile_info[2] = wanted;
    args[0] = blocks;
    args[1] = 1u;
    args[2] = 1u;
    args[3] = (n + 255u) / 256u;
    args[4] = 1u;
    args[5] = 1u;
}

@compute @workgroup_size(256)
fn tile_ranges(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let n = tile_info[0];
    if i >= n {
        return;
    }
    let tile = tile_pairs[i].x;
    if i == 0u || tile_pairs[i - 1u].x != tile {
        ranges[tile].x = i;
    }
    if i + 1u == n || tile_pairs[i + 1u].x != tile {
        ranges[tile].y = i + 1u;
    }
}
