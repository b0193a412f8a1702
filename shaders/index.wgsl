// Integer-indexed ops along one axis. A tensor is viewed as
// [outer, size, inner] around the axis; indices are u32.
//
// - index_select: out[o, k, i] = x[o, idx[k], i]              (out axis size K)
// - index_add:    out[o, d, i] = Σ_{k : idx[k] = d} g[o, k, i]  (out axis size D)
//   summed in increasing k, so repeated indices give the same bits on every
//   run and adapter (no atomics). With `segments` (p[4] = 1) the k of each
//   d come from a host-built segmentation (offsets[D + 1], order[K], k
//   ascending within a segment): work O(K) instead of O(D·K).
// - argmax / argmin along the axis: out[o, i] = the first index of the
//   largest (smallest) value, a NaN counting as larger (smaller) than
//   every number: the first NaN wins, as in numpy.
// p = [outer, size of the input axis, inner, size of the output axis, segments,
//      first step, end step]
// The last two are the steps of the loop (along the axis, or through the
// indices) this dispatch runs: no invocation may loop more than
// MAX_LOOP_TRIPS times (lavapipe stops at 65,535, silently), so a long
// loop is split over dispatches, each carrying on from what the last one
// stored: the same steps in the same order as one loop.
// An index past the axis (impossible for host indices, which are checked
// when recorded) is clamped, so no kernel reads out of bounds; where the
// indices were computed on the GPU and may not fit, the kernels keep
// their `check` lines, which report it in status words (the realize fails).
// - index_clamp: out[t] = min(idx[t], size - 1), the explicit clamp.

@group(0) @binding(0) var<storage, read> p: array<u32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}
