
// The value of the f16 bits h (the low 16 bits), exact: every f16 is an
// f32. No branches (a data-dependent branch in a matmul's inner loop costs
// CPU rasterizers a divergent path per element): normal values rebias the
// exponent (127 − 15 = 112), ±∞ and NaN keep their payload, subnormals
// m·2⁻²⁴ come from an exact integer conversion times an exact power of 2
// (normal in f32, so no flush to zero can touch them).
fn wg_from_f16(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let em = h & 0x7fffu;
    let normal = sign | ((em << 13u) + 0x38000000u);
    let special = sign | 0x7f800000u | ((em & 0x3ffu) << 13u);
    let small = sign | bitcast<u32>(f32(em) * 5.9604644775390625e-8);
    return bitcast<f32>(select(select(normal, special, em >= 0x7c00u), small, em < 0x400u));
}
