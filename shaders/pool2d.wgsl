// Max pooling (NCHW) as a pair of mutually adjoint gathers and scatters.
//
// Window (p, q) of channel (n, c) covers x[n, c, p·sh − ph + r, q·sw − pw + s]
// for r < R, s < S inside the image. Its argmax is the first position in
// row-major window order whose value is greater than every earlier one, a
// NaN winning over any number (the first NaN): NaN propagates, as in numpy.
//
// - max_pool2d_argmax:  at[n, c, p, q] = flat index in x of the argmax of
//   window (p, q), in a buffer of u32 (0xffffffff while none seen)
// - max_pool2d_gather:  out[n, c, p, q] = v[at[n, c, p, q]]
//   (max_pool2d(x) is gather(x, x); gather(x, dv) is its tangent)
// - max_pool2d_scatter: out[n, c, h, w] = Σ over windows whose argmax is
//   (h, w) of g[n, c, p, q], in row-major window order (the gather's adjoint)
//
// No invocation may loop more than MAX_LOOP_TRIPS times (lavapipe stops
// at 65,535, silently), so the argmax walks the R·S window positions, and
// the scatter the windows covering its pixel, in ranges [p[12], p[13])
// over several dispatches, each carrying on from what the last one
// stored: the same comparisons and additions in the same order as one loop.
// p = [N, C, H, W, P, Q, R, S, sh, sw, ph, pw, first position, end position]

@group(0) @binding(0) var<storage, read> p: array<u32>;

fn is_nan(v: f32) -> bool {
    // Bit test: compilers may assume floats are never NaN in comparisons.
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

const NONE: u32 = 0xffffffffu;
