// Register-blocked matrix product with vec4 loads, for K and N multiples of 4.
//
// Each invocation computes an 8×16 block of C (32 vec4 accumulators) straight
// from the storage buffers: per step of 4 along K it loads 8 vec4 of A and
// 16 vec4 of B and does 512 multiply-adds. No workgroup memory or barriers:
// on software rasterizers (lavapipe) loads are the bottleneck and barriers are
// slow. Rows/columns past the edge are clamped on load and skipped on store.
// p = [M, N, K, batch, a_batch_stride, b_batch_stride, first_batch] (strides in elements).
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
    for (var kk = 0u; kk < k4; kk++) {
        let br = kk * 4u * n4;
        let b00 = b[bc0 + br]; let b01 = b[bc1 + br]; let b02 = b[bc2 + br]; let b03 = b[bc3 + br];
        let b10 = b[bc0 + br + 1u * n4]; let b11 = b[bc1 + br + 1u * n4]; let b12 = b[bc2 + br + 1u * n4]; let b13 = b[bc3 + br + 1u * n4];
        let b20 = b[bc0 + br + 2u * n4]; let b21 = b[bc1 + br + 2u * n4]; let b22 = b[bc2 + br + 2u * n4]; let b23 = b[bc3 + br + 2u * n4];
        let b30 = b[bc0 + br + 3u * n4]; let b31 = b[bc1 + br + 3u * n4]; let b32 = b[bc2 + br + 3u * n4]; let b33 = b[bc3 + br + 3u * n4];
        let a0 = a[ar0 + kk];
        acc00 += a0.x * b00 + a0.y * b10 + a0.z * b20 + a0.w * b30;
        acc01 += a0.x * b01 + a0.y * b11 + a0.z * b21 + a0.w * b31;
        acc02 += a0.x * b02 + a0.y * b12 + a0.z * b22 + a0.w * b32;
        acc03 += a0.x * b03 + a0.y * b13 + a0.z * b23 + a0.w * b33;
        let a1 = a[ar1 + kk];
        acc10 += a1.x * b00 + a1.y * b10 + a1.z * b20 + a1.w * b30;
        acc11 += a1.x * b01 + a1.y * b11 + a1.z * b21 + a1.w * b31;
        acc12 += a1.x * b02 + a1.y * b12 + a1.z * b22 + a1.w * b32;
        acc13 += a1.x * b03 + a1.y * b13 + a1.z * b23 + a1.w * b33;
        let a2 = a[ar2 + kk];
        acc20 += a2.x * b00 + a2.y * b10 + a2.z * b20 + a2.w * b30;
        acc21 += a2.x * b01 + a2.y * b11 + a2.z * b21 + a2.w * b31;
        acc22 += a2.x * b02 + a2.y * b12 + a2.z * b22 + a2.w * b32;
        acc23 += a2.x * b03 + a2.y * b13 + a2.z * b23 + a2.w * b33;
        let a3 = a[ar3 + kk];
        acc30 += a3.x * b00 + a3.y * b10 + a3.z * b20 + a3.w * b30;
        acc31 += a3.x * b01 + a3.y * b11 + a3.z * b21 + a3.w * b31;
        acc32 += a3.x * b02 + a3.y * b12 + a3.z * b22 + a3.w * b32;
        acc33 += a3.x * b03 + a3.y * b13 + a3.z * b23 + a3.w * b33;
        let a4 = a[ar4 + kk];
        acc40 += a4.x * b00 + a4.y * b10 + a4.z * b20 + a4.w * b30;
        acc41 += a4.x * b01 + a4.y * b11 + a4.z * b21 + a4.w * b31;
        acc42 += a4.x * b02 + a4.y * b12 + a4.z * b22 + a4.w * b32;
        acc43 += a4.x * b03 + a4.y * b13 + a4.z * b23 + a4.w * b33;
        let a5 = a[ar5 + kk];
        acc50 += a5.x * b00 + a5.y * b10 + a5.z * b20 + a5.w * b30;
        acc51 += a5.x * b01 + a5.y * b11 + a5.z * b21 + a5.w * b31;
        acc52 += a5.x * b02 + a5.y * b12 + a5.z * b22 + a5.w * b32;
        acc53 += a5.x * b03 + a5.y * b13 + a5.z * b23 + a5.w * b33;
        let a6 = a[ar6 + kk];
        acc60 += a6.x * b00 + a6.y * b10 + a6.z * b20 + a6.w * b30;
        acc61 += a6.x * b01 + a6.y * b11 + a6.z * b21 + a6.w * b31;
        acc62 += a6.x * b02 + a6.y * b12 + a6.z * b22 + a6.w * b32;
        acc63 += a6.x * b03 + a6.y * b13 + a6.z * b23 + a6.w * b33;
        let a7 = a[ar7 + kk];
        acc70 += a7.x * b00 + a7.y * b10 + a7.z * b20 + a7.w * b30;
        acc71 += a7.x * b01 + a7.y * b11 + a7.z * b21 + a7.w * b31;
        acc72 += a7.x * b02 + a7.y * b12 + a7.z * b22 + a7.w * b32;
        acc73 += a7.x * b03 + a7.y * b13 + a7.z * b23 + a7.w * b33;
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
