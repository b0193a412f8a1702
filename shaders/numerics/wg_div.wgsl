// a / b with IEEE 754's division by zero on every adapter (WGSL leaves
// it to the driver): 0/0 and NaN/0 are NaN, x/±0 is ±∞ by the signs.
fn wg_div(a: f32, b: f32) -> f32 {
    // `b != 0.0` would be false for a NaN b (drivers compare ordered).
    if (b == 0.0) {
        if (a == 0.0 || wg_isnan(a)) {
            return wg_nan();
        }
        let negative = ((bitcast<u32>(a) ^ bitcast<u32>(b)) & 0x80000000u) != 0u;
        return select(wg_inf(), -wg_inf(), negative);
    }
    return a / b;
}
