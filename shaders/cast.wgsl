// Conversion between f32 and a 16-bit storage format (`format`: f16 or
// bf16), packed two values per 32-bit word: element 2i in the low half of
// word i, element 2i + 1 in the high half. All integer arithmetic on the
// bits, so the result is the same on every adapter whatever its float
// modes (flushed subnormals, fast math); WGSL's pack2x16float leaves
// values past f16's range indeterminate, and IEEE gives them ±∞.
// Rounding is to nearest, ties to even; NaN stays NaN (quiet).
// p = [n] (elements)

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
{% if format == "f16" %}
// f32 bits → f16 bits.
fn to_16(b: u32) -> u32 {
    let sign = (b >> 16u) & 0x8000u;
    let a = b & 0x7fffffffu;
    if (a > 0x7f800000u) {
        // NaN: quiet, the payload's top bits kept.
        return sign | 0x7e00u | ((a >> 13u) & 0x3ffu);
    }
    if (a >= 0x47800000u) {
        // 65536 and beyond (∞ included): past the largest finite (65504).
        return sign | 0x7c00u;
    }
    if (a >= 0x38800000u) {
        // Normal in f16 (from 2⁻¹⁴): 23 fraction bits rounded to 10 at bit
        // 13, ties to even; the exponent rebiased (127 − 15 = 112). A carry
        // past 65504 gives 0x7c00, ∞.
        let r = a + 0xfffu + ((a >> 13u) & 1u);
        return sign | ((r >> 13u) - (112u << 10u));
    }
    let e = a >> 23u;
    if (e < 102u) {
        // Below 2⁻²⁵ (or exactly 2⁻²⁵, a tie to the even 0): ±0.
        return sign;
    }
    // Subnormal in f16: the value in units of 2⁻²⁴, the 24-bit significand
    // shifted right by 126 − e (14 to 24), rounded to nearest even. A
    // result of 1024 is 2⁻¹⁴, the smallest normal: the same bits.
    let m = (a & 0x7fffffu) | 0x800000u;
    let shift = 126u - e;
    let q = m >> shift;
    let rest = m & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    let up = rest > half || (rest == half && (q & 1u) == 1u);
    return sign | (q + select(0u, 1u, up));
}

// f16 bits → f32 bits (exact: every f16 is an f32).
fn from_16(h: u32) -> u32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0x1fu) {
        return sign | 0x7f800000u | (m << 13u);
    }
    if (e == 0u) {
        if (m == 0u) {
            return sign;
        }
        // m·2⁻²⁴ with m's leading bit at position t: 2^(t − 24), normal in f32.
        let t = firstLeadingBit(m);
        return sign | ((t + 103u) << 23u) | ((m << (23u - t)) & 0x7fffffu);
    }
    return sign | ((e + 112u) << 23u) | (m << 13u);
}
{%- else %}
// f32 bits → bf16 bits: the top half, rounded to nearest even at bit 16
// (a carry past the largest finite value gives ∞, as IEEE says).
fn to_16(b: u32) -> u32 {
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        // NaN: quiet, the payload's top bits kept.
        return (b >> 16u) | 0x40u;
    }
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}

// bf16 bits → f32 bits.
fn from_16(h: u32) -> u32 {
    return h << 16u;
}
{%- endif %}

@compute @workgroup_size(256)
fn convert(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let n = p[0];
{%- if to_f32 %}
    // One invocation per element, from its half of word i / 2.
    if (i >= n) {
        return;
    }
    let word = src[i / 2u];
    dst[i] = from_16(select(word & 0xffffu, word >> 16u, (i & 1u) == 1u));
{%- else %}
    // One invocation per word: elements 2i and 2i + 1 (past an odd n, 0).
    if (2u * i >= n) {
        return;
    }
    let low = to_16(src[2u * i]);
    let high = select(0u, to_16(src[min(2u * i + 1u, n - 1u)]), 2u * i + 1u < n);
    dst[i] = low | (high << 16u);
{%- endif %}
}
