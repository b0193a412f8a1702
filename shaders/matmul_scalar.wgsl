// Register-blocked matrix product, any shape: each invocation computes a
// 4×4 block of C from scalar loads (rows/cols clamped at the edges, stores
// guarded). Used when K or N is not a multiple of 4.
// p = [M, N, K, batch, a_batch_stride, b_batch_stride, first_batch] (strides in elements;
// 0 broadcasts an operand over the batch). Batch index = workgroup z.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn matmul_scalar(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= m || col0 >= n) {
        return;
    }
    // Batches beyond one dispatch's 65,535 z-groups come in several dispatches.
    let batch = gid.z + p[6];
    let ab = batch * p[4];
    let bb = batch * p[5];
    let cb = batch * m * n;
    let a0 = ab + min(row0, m - 1u) * k;
    let a1 = ab + min(row0 + 1u, m - 1u) * k;
    let a2 = ab + min(row0 + 2u, m - 1u) * k;
    let a3 = ab + min(row0 + 3u, m - 1u) * k;
    let c0 = min(col0, n - 1u);
    let c1 = min(col0 + 1u, n - 1u);
    let c2 = min(col0 + 2u, n - 1u);
    let c3 = min(col0 + 3u, n - 1u);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < k; kk++) {
        let brow = bb + kk * n;
        let bv = vec4<f32>(b[brow + c0], b[brow + c1], b[brow + c2], b[brow + c3]);
        acc0 += a[a0 + kk] * bv;
        acc1 += a[a1 + kk] * bv;
        acc2 += a[a2 + kk] * bv;
        acc3 += a[a3 + kk] * bv;
    }
    if (row0 + 0u < m) {
        let o = cb + (row0 + 0u) * n + col0;
        c[o] = acc0.x;
        if (col0 + 1u < n) { c[o + 1u] = acc0.y; }
        if (col0 + 2u < n) { c[o + 2u] = acc0.z; }
        if (col0 + 3u < n) { c[o + 3u] = acc0.w; }
    }
    if (row0 + 1u < m) {
        let o = cb + (row0 + 1u) * n + col0;
        c[o] = acc1.x;
        if (col0 + 1u < n) { c[o + 1u] = acc1.y; }
        if (col0 + 2u < n) { c[o + 2u] = acc1.z; }
        if (col0 + 3u < n) { c[o + 3u] = acc1.w; }
    }
    if (row0 + 2u < m) {
        let o = cb + (row0 + 2u) * n + col0;
        c[o] = acc2.x;
        if (col0 + 1u < n) { c[o + 1u] = acc2.y; }
        if (col0 + 2u < n) { c[o + 2u] = acc2.z; }
        if (col0 + 3u < n) { c[o + 3u] = acc2.w; }
    }
    if (row0 + 3u < m) {
        let o = cb + (row0 + 3u) * n + col0;
        c[o] = acc3.x;
        if (col0 + 1u < n) { c[o + 1u] = acc3.y; }
        if (col0 + 2u < n) { c[o + 2u] = acc3.z; }
        if (col0 + 3u < n) { c[o + 3u] = acc3.w; }
    }
}
