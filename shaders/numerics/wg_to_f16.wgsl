
// The f16 bits of x, rounded to nearest (ties to even). All integer
// arithmetic on the bits, so the result is the same on every adapter
// whatever its float modes (flushed subnormals, fast math); WGSL's
// pack2x16float leaves values past f16's range indeterminate, and IEEE
// gives them ±∞. NaN stays NaN (quiet, the payload's top bits kept).
// No branches: every case is computed and one selected (a data-dependent
// branch costs CPU rasterizers a divergent path, and inlined into the
// stores of a matmul it made the whole kernel slower).
fn wg_to_f16(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let sign = (b >> 16u) & 0x8000u;
    let a = b & 0x7fffffffu;
    let nan = sign | 0x7e00u | ((a >> 13u) & 0x3ffu);
    // 65536 and beyond (∞ included): past the largest finite (65504).
    let inf = sign | 0x7c00u;
    // Normal in f16 (from 2⁻¹⁴): 23 fraction bits rounded to 10 at bit 13,
    // ties to even; the exponent rebiased (127 − 15 = 112). A carry past
    // 65504 gives 0x7c00, ∞.
    let r = a + 0xfffu + ((a >> 13u) & 1u);
    let normal = sign | ((r >> 13u) - (112u << 10u));
    // Subnormal in f16 (exponents 102 to 112): the value in units of
    // 2⁻²⁴, the 24-bit significand shifted right by 126 − e (14 to 24),
    // rounded to nearest even. A result of 1024 is 2⁻¹⁴, the smallest
    // normal: the same bits. Below 2⁻²⁵ (or exactly 2⁻²⁵, a tie to the
    // even 0): ±0.
    let e = a >> 23u;
    let shift = 126u - clamp(e, 102u, 112u);
    let m = (a & 0x7fffffu) | 0x800000u;
    let q = m >> shift;
    let rest = m & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    let up = (rest > half) | ((rest == half) & ((q & 1u) == 1u));
    let small = select(sign | (q + select(0u, 1u, up)), sign, e < 102u);
    let finite = select(small, normal, a >= 0x38800000u);
    return select(select(finite, inf, a >= 0x47800000u), nan, a > 0x7f800000u);
}
