// Deterministic strided reduction, one pass of a fixed tree.
//
// Input viewed as M outputs × K reduced elements: element (o, j) sits at
// src[o·so + j·sr]. Each of the M·P invocations folds every P-th element of
// its row, starting at its part index, in a fixed order, and writes
// dst[o·P + part]. The scheduler repeats passes (with P shrinking) until P = 1.
// No atomics, no workgroup memory: the same input gives the same bits.
// p = [M, K, so, sr, P]
// Specialized by the IDENTITY and COMBINE placeholders (sum, max, min).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let parts = p[4];
    if (t >= p[0] * parts) {
        return;
    }
    let o = t / parts;
    let k = p[1];
    let sr = p[3];
    let base = o * p[2];
    var acc = {{IDENTITY}};
    for (var j = t % parts; j < k; j += parts) {
        let v = src[base + j * sr];
        acc = {{COMBINE}};
    }
    dst[t] = acc;
}
