// Register-blocked matrix product with vec4 loads, for K and N multiples of 4.
//
// Each invocation computes an 8×16 block of C (32 vec4 accumulators) straight
// from the storage buffers: per step of 4 along K it loads 8 vec4 of A and
// 16 vec4 of B and does 512 multiply-adds. No workgroup memory or barriers:
// on software rasterizers (lavapipe) loads are the bottleneck and barriers are
// slow. Rows/columns past the edge are clamped on load and skipped on store.
// p = [M, N, K, batch, a_batch_stride, b_batch_stride, first_batch,
//      first step, end step (of K/4), carry on] (strides in elements).
// A long K is split over dispatches (no invocation may loop more than
// MAX_LOOP_TRIPS times: lavapipe stops at 65,535, silently); with
// p[9] = 1 the accumulators start from what the last dispatch stored, so
// each output is the same fmas in the same order as in one loop.
// The unrolled body was written out by a short script (one line per accumulator).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

@compute @workgroup_size(8, 8, 1)
fn matmul_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = p[0];
    let n4 = p[1] / 4u;
    let k4 = p[2] / 4u;
    let row0 = gid.y * 8u;
    let col0 = gid.x * 4u;
    if (row0 >= m || col0 >= n4) {
        return;
    }
    // Batches beyond one dispatch's 65,535 z-groups come in several dispatches.
    let batch = gid.z + p[6];
    let ab = batch * (p[4] / 4u);
    let bb = batch * (p[5] / 4u);
    let cb = batch * m * n4;
    let ar0 = ab + min(row0 + 0u, m - 1u) * k4;
    let ar1 = ab + min(row0 + 1u, m - 1u) * k4;
    let ar2 = ab + min(row0 + 2u, m - 1u) * k4;
    let ar3 = ab + min(row0 + 3u, m - 1u) * k4;
    let ar4 = ab + min(row0 + 4u, m - 1u) * k4;
    let ar5 = ab + min(row0 + 5u, m - 1u) * k4;
    let ar6 = ab + min(row0 + 6u, m - 1u) * k4;
    let ar7 = ab + min(row0 + 7u, m - 1u) * k4;
    let bc0 = bb + min(col0 + 0u, n4 - 1u);
    let bc1 = bb + min(col0 + 1u, n4 - 1u);
    let bc2 = bb + min(col0 + 2u, n4 - 1u);
    let bc3 = bb + min(col0 + 3u, n4 - 1u);
    var acc00 = vec4<f32>(0.0); var acc01 = vec4<f32>(0.0); var acc02 = vec4<f32>(0.0); var acc03 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0); var acc11 = vec4<f32>(0.0); var acc12 = vec4<f32>(0.0); var acc13 = vec4<f32>(0.0);
    var acc20 = vec4<f32>(0.0); var acc21 = vec4<f32>(0.0); var acc22 = vec4<f32>(0.0); var acc23 = vec4<f32>(0.0);
    var acc30 = vec4<f32>(0.0); var acc31 = vec4<f32>(0.0); var acc32 = vec4<f32>(0.0); var acc33 = vec4<f32>(0.0);
    var acc40 = vec4<f32>(0.0); var acc41 = vec4<f32>(0.0); var acc42 = vec4<f32>(0.0); var acc43 = vec4<f32>(0.0);
    var acc50 = vec4<f32>(0.0); var acc51 = vec4<f32>(0.0); var acc52 = vec4<f32>(0.0); var acc53 = vec4<f32>(0.0);
    var acc60 = vec4<f32>(0.0); var acc61 = vec4<f32>(0.0); var acc62 = vec4<f32>(0.0); var acc63 = vec4<f32>(0.0);
    var acc70 = vec4<f32>(0.0); var acc71 = vec4<f32>(0.0); var acc72 = vec4<f32>(0.0); var acc73 = vec4<f32>(0.0);
    if (p[9] == 1u) {
        acc00 = c[cb + min(row0 + 0u, m - 1u) * n4 + min(col0 + 0u, n4 - 1u)];
        acc01 = c[cb + min(row0 + 0u, m - 1u) * n4 + min(col0 + 1u, n4 - 1u)];
        acc02 = c[cb + min(row0 + 0u, m - 1u) * n4 + min(col0 + 2u, n4 - 1u)];
        acc03 = c[cb + min(row0 + 0u, m - 1u) * n4 + min(col0 + 3u, n4 - 1u)];
        acc10 = c[cb + min(row0 + 1u, m - 1u) * n4 + min(col0 + 0u, n4 - 1u)];
        acc11 = c[cb + min(row0 + 1u, m - 1u) * n4 + min(col0 + 1u, n4 - 1u)];
        acc12 = c[cb + min(row0 + 1u, m - 1u) * n4 + min(col0 + 2u, n4 - 1u)];
        acc13 = c[cb + min(row0 + 1u, m - 1u) * n4 + min(col0 + 3u, n4 - 1u)];
        acc20 = c[cb + min(row0 + 2u, m - 1u) * n4 + min(col0 + 0u, n4 - 1u)];
        acc21 = c[cb + min(row0 + 2u, m - 1u) * n4 + min(col0 + 1u, n4 - 1u)];
        acc22 = c[cb + min(row0 + 2u, m - 1u) * n4 + min(col0 + 2u, n4 - 1u)];
        acc23 = c[cb + min(row0 + 2u, m - 1u) * n4 + min(col0 + 3u, n4 - 1u)];
        acc30 = c[cb + min(row0 + 3u, m - 1u) * n4 + min(col0 + 0u, n4 - 1u)];
        acc31 = c[cb + min(row0 + 3u, m - 1u) * n4 + min(col0 + 1u, n4 - 1u)];
        acc32 = c[cb + min(row0 + 3u, m - 1u) * n4 + min(col0 + 2u, n4 - 1u)];
        acc33 = c[cb + min(row0 + 3u, m - 1u) * n4 + min(col0 + 3u, n4 - 1u)];
        acc40 = c[cb + min(row0 + 4u, m - 1u) * n4 + min(col0 + 0u, n4 - 1u)];
        acc41 = c[cb + min(row0 + 4u, m - 1u) * n4 + min(col0 + 1u, n4 - 1u)];
        acc42 = c[cb + min(row0 + 4u, m - 1u) * n4 + min(col0 + 2u, n4 - 1u)];
        acc43 = c[cb + min(row0 + 4u, m - 1u) * n4 + min(col0 + 3u, n4 - 1u)];
        acc50 = c[cb + min(row0 + 5u, m - 1u) * n4 + min(col0 + 0u, n4 - 1u)];
        acc51 = c[cb + min(row0 + 5u, m - 1u) * n4 + min(col0 + 1u, n4 - 1u)];
        acc52 = c[cb + min(row0 + 5u, m - 1u) * n4 + min(col0 + 2u, n4 - 1u)];
        acc53 = c[cb + min(row0 + 5u, m - 1u) * n4 + min(col0 + 3u, n4 - 1u)];
        acc60 = c[cb + min(row0 + 6u, m - 1u) * n4 + min(col0 + 0u, n4 - 1u)];
        acc61 = c[cb + min(row0 + 6u, m - 1u) * n4 + min(col0 + 1u, n4 - 1u)];
        acc62 = c[cb + min(row0 + 6u, m - 1u) * n4 + min(col0 + 2u, n4 - 1u)];
        acc63 = c[cb + min(row0 + 6u, m - 1u) * n4 + min(col0 + 3u, n4 - 1u)];
        acc70 = c[cb + min(row0 + 7u, m - 1u) * n4 + min(col0 + 0u, n4 - 1u)];
        acc71 = c[cb + min(row0 + 7u, m - 1u) * n4 + min(col0 + 1u, n4 - 1u)];
        acc72 = c[cb + min(row0 + 7u, m - 1u) * n4 + min(col0 + 2u, n4 - 1u)];
        acc73 = c[cb + min(row0 + 7u, m - 1u) * n4 + min(col0 + 3u, n4 - 1u)];
    }
    // The bound in a register: read from storage on every iteration it
    // costs a load per lane on CPU rasterizers.
    let kk_end = p[8];
    for (var kk = p[7]; kk < kk_end; kk++) {
        let br = kk * 4u * n4;
        let b00 = b[bc0 + br]; let b01 = b[bc1 + br]; let b02 = b[bc2 + br]; let b03 = b[bc3 + br];
        let b10 = b[bc0 + br + 1u * n4]; let b11 = b[bc1 + br + 1u * n4]; let b12 = b[bc2 + br + 1u * n4]; let b13 = b[bc3 + br + 1u * n4];
        let b20 = b[bc0 + br + 2u * n4]; let b21 = b[bc1 + br + 2u * n4]; let b22 = b[bc2 + br + 2u * n4]; let b23 = b[bc3 + br + 2u * n4];
        let b30 = b[bc0 + br + 3u * n4]; let b31 = b[bc1 + br + 3u * n4]; let b32 = b[bc2 + br + 3u * n4]; let b33 = b[bc3 + br + 3u * n4];
        let a0 = a[ar0 + kk];
        acc00 = fma(a0.wwww, b30, fma(a0.zzzz, b20, fma(a0.yyyy, b10, fma(a0.xxxx, b00, acc00))));
        acc01 = fma(a0.wwww, b31, fma(a0.zzzz, b21, fma(a0.yyyy, b11, fma(a0.xxxx, b01, acc01))));
        acc02 = fma(a0.wwww, b32, fma(a0.zzzz, b22, fma(a0.yyyy, b12, fma(a0.xxxx, b02, acc02))));
        acc03 = fma(a0.wwww, b33, fma(a0.zzzz, b23, fma(a0.yyyy, b13, fma(a0.xxxx, b03, acc03))));
        let a1 = a[ar1 + kk];
        acc10 = fma(a1.wwww, b30, fma(a1.zzzz, b20, fma(a1.yyyy, b10, fma(a1.xxxx, b00, acc10))));
        acc11 = fma(a1.wwww, b31, fma(a1.zzzz, b21, fma(a1.yyyy, b11, fma(a1.xxxx, b01, acc11))));
        acc12 = fma(a1.wwww, b32, fma(a1.zzzz, b22, fma(a1.yyyy, b12, fma(a1.xxxx, b02, acc12))));
        acc13 = fma(a1.wwww, b33, fma(a1.zzzz, b23, fma(a1.yyyy, b13, fma(a1.xxxx, b03, acc13))));
        let a2 = a[ar2 + kk];
        acc20 = fma(a2.wwww, b30, fma(a2.zzzz, b20, fma(a2.yyyy, b10, fma(a2.xxxx, b00, acc20))));
        acc21 = fma(a2.wwww, b31, fma(a2.zzzz, b21, fma(a2.yyyy, b11, fma(a2.xxxx, b01, acc21))));
        acc22 = fma(a2.wwww, b32, fma(a2.zzzz, b22, fma(a2.yyyy, b12, fma(a2.xxxx, b02, acc22))));
        acc23 = fma(a2.wwww, b33, fma(a2.zzzz, b23, fma(a2.yyyy, b13, fma(a2.xxxx, b03, acc23))));
        let a3 = a[ar3 + kk];
        acc30 = fma(a3.wwww, b30, fma(a3.zzzz, b20, fma(a3.yyyy, b10, fma(a3.xxxx, b00, acc30))));
        acc31 = fma(a3.wwww, b31, fma(a3.zzzz, b21, fma(a3.yyyy, b11, fma(a3.xxxx, b01, acc31))));
        acc32 = fma(a3.wwww, b32, fma(a3.zzzz, b22, fma(a3.yyyy, b12, fma(a3.xxxx, b02, acc32))));
        acc33 = fma(a3.wwww, b33, fma(a3.zzzz, b23, fma(a3.yyyy, b13, fma(a3.xxxx, b03, acc33))));
        let a4 = a[ar4 + kk];
        acc40 = fma(a4.wwww, b30, fma(a4.zzzz, b20, fma(a4.yyyy, b10, fma(a4.xxxx, b00, acc40))));
        acc41 = fma(a4.wwww, b31, fma(a4.zzzz, b21, fma(a4.yyyy, b11, fma(a4.xxxx, b01, acc41))));
        acc42 = fma(a4.wwww, b32, fma(a4.zzzz, b22, fma(a4.yyyy, b12, fma(a4.xxxx, b02, acc42))));
        acc43 = fma(a4.wwww, b33, fma(a4.zzzz, b23, fma(a4.yyyy, b13, fma(a4.xxxx, b03, acc43))));
        let a5 = a[ar5 + kk];
        acc50 = fma(a5.wwww, b30, fma(a5.zzzz, b20, fma(a5.yyyy, b10, fma(a5.xxxx, b00, acc50))));
        acc51 = fma(a5.wwww, b31, fma(a5.zzzz, b21, fma(a5.yyyy, b11, fma(a5.xxxx, b01, acc51))));
        acc52 = fma(a5.wwww, b32, fma(a5.zzzz, b22, fma(a5.yyyy, b12, fma(a5.xxxx, b02, acc52))));
        acc53 = fma(a5.wwww, b33, fma(a5.zzzz, b23, fma(a5.yyyy, b13, fma(a5.xxxx, b03, acc53))));
        let a6 = a[ar6 + kk];
        acc60 = fma(a6.wwww, b30, fma(a6.zzzz, b20, fma(a6.yyyy, b10, fma(a6.xxxx, b00, acc60))));
        acc61 = fma(a6.wwww, b31, fma(a6.zzzz, b21, fma(a6.yyyy, b11, fma(a6.xxxx, b01, acc61))));
        acc62 = fma(a6.wwww, b32, fma(a6.zzzz, b22, fma(a6.yyyy, b12, fma(a6.xxxx, b02, acc62))));
        acc63 = fma(a6.wwww, b33, fma(a6.zzzz, b23, fma(a6.yyyy, b13, fma(a6.xxxx, b03, acc63))));
        let a7 = a[ar7 + kk];
        acc70 = fma(a7.wwww, b30, fma(a7.zzzz, b20, fma(a7.yyyy, b10, fma(a7.xxxx, b00, acc70))));
        acc71 = fma(a7.wwww, b31, fma(a7.zzzz, b21, fma(a7.yyyy, b11, fma(a7.xxxx, b01, acc71))));
        acc72 = fma(a7.wwww, b32, fma(a7.zzzz, b22, fma(a7.yyyy, b12, fma(a7.xxxx, b02, acc72))));
        acc73 = fma(a7.wwww, b33, fma(a7.zzzz, b23, fma(a7.yyyy, b13, fma(a7.xxxx, b03, acc73))));
    }
    if (row0 + 0u < m) {
        let o = cb + (row0 + 0u) * n4 + col0;
        c[o] = acc00;
        if (col0 + 1u < n4) { c[o + 1u] = acc01; }
        if (col0 + 2u < n4) { c[o + 2u] = acc02; }
        if (col0 + 3u < n4) { c[o + 3u] = acc03; }
    }
    if (row0 + 1u < m) {
        let o = cb + (row0 + 1u) * n4 + col0;
        c[o] = acc10;
        if (col0 + 1u < n4) { c[o + 1u] = acc11; }
        if (col0 + 2u < n4) { c[o + 2u] = acc12; }
        if (col0 + 3u < n4) { c[o + 3u] = acc13; }
    }
    if (row0 + 2u < m) {
        let o = cb + (row0 + 2u) * n4 + col0;
        c[o] = acc20;
        if (col0 + 1u < n4) { c[o + 1u] = acc21; }
        if (col0 + 2u < n4) { c[o + 2u] = acc22; }
        if (col0 + 3u < n4) { c[o + 3u] = acc23; }
    }
    if (row0 + 3u < m) {
        let o = cb + (row0 + 3u) * n4 + col0;
        c[o] = acc30;
        if (col0 + 1u < n4) { c[o + 1u] = acc31; }
        if (col0 + 2u < n4) { c[o + 2u] = acc32; }
        if (col0 + 3u < n4) { c[o + 3u] = acc33; }
    }
    if (row0 + 4u < m) {
        let o = cb + (row0 + 4u) * n4 + col0;
        c[o] = acc40;
        if (col0 + 1u < n4) { c[o + 1u] = acc41; }
        if (col0 + 2u < n4) { c[o + 2u] = acc42; }
        if (col0 + 3u < n4) { c[o + 3u] = acc43; }
    }
    if (row0 + 5u < m) {
        let o = cb + (row0 + 5u) * n4 + col0;
        c[o] = acc50;
        if (col0 + 1u < n4) { c[o + 1u] = acc51; }
        if (col0 + 2u < n4) { c[o + 2u] = acc52; }
        if (col0 + 3u < n4) { c[o + 3u] = acc53; }
    }
    if (row0 + 6u < m) {
        let o = cb + (row0 + 6u) * n4 + col0;
        c[o] = acc60;
        if (col0 + 1u < n4) { c[o + 1u] = acc61; }
        if (col0 + 2u < n4) { c[o + 2u] = acc62; }
        if (col0 + 3u < n4) { c[o + 3u] = acc63; }
    }
    if (row0 + 7u < m) {
        let o = cb + (row0 + 7u) * n4 + col0;
        c[o] = acc70;
        if (col0 + 1u < n4) { c[o + 1u] = acc71; }
        if (col0 + 2u < n4) { c[o + 2u] = acc72; }
        if (col0 + 3u < n4) { c[o + 3u] = acc73; }
    }
}
