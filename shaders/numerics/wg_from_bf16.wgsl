
// The value of the bf16 bits h (the low 16 bits): the top half of an f32.
fn wg_from_bf16(h: u32) -> f32 {
    return bitcast<f32>(h << 16u);
}
