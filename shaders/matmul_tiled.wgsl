// Shared-memory tiled matrix product, the variant for real GPUs: a 16×16
// workgroup computes a 64×64 tile of C, each invocation a 4×4 block. Per step
// of 16 along K, the workgroup stages a 64×16 tile of A and a 16×64 tile of B
// in workgroup memory (each element loaded from global memory once per
// workgroup instead of once per invocation), then every invocation does 256
// multiply-adds from it. On CPU rasterizers (lavapipe) the barriers make this
// slower than the register-blocked kernels; the device picks per adapter.
// p = [M, N, K, batch, a_batch_stride, b_batch_stride, first_batch,
//      first step, end step (of K, multiples of 16 but the last), carry on]
// (strides in elements). A long K is split over dispatches (see
// matmul_vec4.wgsl); with p[9] = 1 the accumulators start from C.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

var<workgroup> tile_a: array<f32, 1024>; // 64 rows × 16
var<workgroup> tile_b: array<f32, 1024>; // 16 × 64 columns

/// Four consecutive values of C's row `row` from column `col`, clamped at the edge.
fn load_c(cb: u32, row: u32, col: u32, n: u32) -> vec4<f32> {
    let o = cb + row * n;
    return vec4<f32>(c[o + min(col, n - 1u)], c[o + min(col + 1u, n - 1u)],
                     c[o + min(col + 2u, n - 1u)], c[o + min(col + 3u, n - 1u)]);
}

@compute @workgroup_size(16, 16, 1)
fn matmul_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let row0 = wg.y * 64u;
    let col0 = wg.x * 64u;
    // Batches beyond one dispatch's 65,535 z-groups come in several dispatches.
    let batch = wg.z + p[6];
    let ab = batch * p[4];
    let bb = batch * p[5];
    let cb = batch * m * n;
    let tid = lid.y * 16u + lid.x;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    if (p[9] == 1u) {
        let col = col0 + lid.x * 4u;
        let row = row0 + lid.y * 4u;
        acc0 = load_c(cb, min(row, m - 1u), col, n);
        acc1 = load_c(cb, min(row + 1u, m - 1u), col, n);
        acc2 = load_c(cb, min(row + 2u, m - 1u), col, n);
        acc3 = load_c(cb, min(row + 3u, m - 1u), col, n);
    }
    // The bound in a register: read from storage on every iteration it
    // costs a load per lane on CPU rasterizers.
    let k0_end = p[8];
    for (var k0 = p[7]; k0 < k0_end; k0 += 16u) {
        for (var e = 0u; e < 4u; e++) {
            let idx = tid + e * 256u;
            let ar = row0 + idx / 16u;
            let ac = k0 + idx % 16u;
            let av = a[ab + min(ar, m - 1u) * k + min(ac, k - 1u)];
            tile_a[idx] = select(0.0, av, ar < m && ac < k);
            let br = k0 + idx / 64u;
            let bc = col0 + idx % 64u;
            let bv = b[bb + min(br, k - 1u) * n + min(bc, n - 1u)];
            tile_b[idx] = select(0.0, bv, br < k && bc < n);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            let bo = kk * 64u + lid.x * 4u;
            let bv = vec4<f32>(tile_b[bo], tile_b[bo + 1u], tile_b[bo + 2u], tile_b[bo + 3u]);
            let ao = lid.y * 64u + kk;
            acc0 = fma(vec4<f32>(tile_a[ao]), bv, acc0);
            acc1 = fma(vec4<f32>(tile_a[ao + 16u]), bv, acc1);
            acc2 = fma(vec4<f32>(tile_a[ao + 32u]), bv, acc2);
            acc3 = fma(vec4<f32>(tile_a[ao + 48u]), bv, acc3);
        }
        workgroupBarrier();
    }
    let col = col0 + lid.x * 4u;
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r++) {
        let row = row0 + lid.y * 4u + r;
        if (row < m) {
            let acc = accs[r];
            let o = cb + row * n + col;
            if (col < n) { c[o] = acc.x; }
            if (col + 1u < n) { c[o + 1u] = acc.y; }
            if (col + 2u < n) { c[o + 2u] = acc.z; }
            if (col + 3u < n) { c[o + 3u] = acc.w; }
        }
    }
}
