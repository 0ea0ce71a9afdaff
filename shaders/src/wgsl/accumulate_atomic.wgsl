// Gradient accumulation without subgroups: every pixel that a splat touches adds its share to
// the batch's workgroup accumulators itself (compare-and-swap loops, contended by the tile).
fn accumulate(base: u32, hit: bool, low: vec4<f32>, high: vec4<f32>, blue: f32) {
    if hit {
        add_splat(base, low, high, blue);
    }
}
