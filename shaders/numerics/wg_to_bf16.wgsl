
// The bf16 bits of x: its top half, rounded to nearest even at bit 16 (a
// carry past the largest finite value gives ∞, as IEEE says). NaN stays
// NaN (quiet, the payload's top bits kept).
fn wg_to_bf16(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return (b >> 16u) | 0x40u;
    }
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}
