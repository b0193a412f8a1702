
// The value of the f16 bits h (the low 16 bits), exact: every f16 is an f32.
fn wg_from_f16(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0x1fu) {
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    if (e == 0u) {
        if (m == 0u) {
            return bitcast<f32>(sign);
        }
        // m·2⁻²⁴ with m's leading bit at position t: 2^(t − 24), normal in f32.
        let t = firstLeadingBit(m);
        return bitcast<f32>(sign | ((t + 103u) << 23u) | ((m << (23u - t)) & 0x7fffffu));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}
