{% include "index.wgsl" %}
// See index.wgsl for the layout. Bindings: x, out (u32 indices).
// `smallest`: argmin (true) or argmax (false).
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn is_nan(v: f32) -> bool {
    // Bit test: compilers may assume floats are never NaN in comparisons.
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

@compute @workgroup_size(256)
fn arg_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let size = p[1];
    let inner = p[2];
    if (t >= p[0] * inner) {
        return;
    }
    let i = t % inner;
    let o = t / inner;
    let base = o * size * inner + i;
    // The first dispatch starts from element 0; the others from the
    // extreme the last one stored.
    var at = 0u;
    if (p[5] > 0u) {
        at = dst[t];
    }
    var best = x[base + at * inner];
    // The bound in a register: read from storage on every iteration it
    // costs a load per lane on CPU rasterizers.
    let k_end = p[6];
    for (var k = max(p[5], 1u); k < k_end; k++) {
        if (is_nan(best)) {
            break;
        }
        let v = x[base + k * inner];
        if (is_nan(v) || select(v > best, v < best, {{ smallest }})) {
            best = v;
            at = k;
        }
    }
    dst[t] = at;
}
