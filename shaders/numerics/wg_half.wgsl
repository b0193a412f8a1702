
// Element j's 16 bits in the word holding elements j and j ^ 1: 16-bit
// values are stored two per 32-bit word, element 2i in the low half of
// word i, element 2i + 1 in the high half.
fn wg_half(word: u32, j: u32) -> u32 {
    return select(word & 0xffffu, word >> 16u, (j & 1u) == 1u);
}
