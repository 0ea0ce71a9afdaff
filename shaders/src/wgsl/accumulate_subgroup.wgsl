// Gradient accumulation with subgroups: the subgroup sums its pixels' shares first, and one
// invocation adds the sum, so a splat's accumulators see one add per subgroup instead of one per
// pixel. Called in uniform control flow (every pixel of the tile walks the same batch).
fn accumulate(base: u32, hit: bool, low: vec4<f32>, high: vec4<f32>, blue: f32) {
    if !subgroupAny(hit) {
        return;
    }
    let l = subgroupAdd(low);
    let h = subgroupAdd(high);
    let b = subgroupAdd(blue);
    // The first invocation of the subgroup (nothing before it) adds the sum.
    if subgroupExclusiveAdd(1u) == 0u {
        add_splat(base, l, h, b);
    }
}
