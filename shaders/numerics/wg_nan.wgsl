// A quiet NaN built at run time (shader compilers reject NaN constants).
fn wg_nan() -> f32 {
    return bitcast<f32>(0x7fc00000u | (p[0] & 0u));
}
