// NaN test on the bits: compilers may assume floats are never NaN, and
// fold `x != x` to false.
fn wg_isnan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}
