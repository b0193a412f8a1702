// +∞ built at run time (shader compilers reject infinite constants).
fn wg_inf() -> f32 {
    return bitcast<f32>(0x7f800000u | (p[0] & 0u));
}
