// ±∞ test on the bits (a literal as large as f32::MAX is rejected by
// some WGSL compilers, and compilers may assume floats are finite).
fn wg_isinf(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}
