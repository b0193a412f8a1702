{% include "index.wgsl" %}
// See index.wgsl for the layout. Bindings: idx, out (u32 indices):
// out[t] = min(idx[t], p[1] - 1), p = [count, size] (size at least 1).
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(256)
fn index_clamp(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if (t >= p[0]) {
        return;
    }
    dst[t] = min(idx[t], p[1] - 1u);
}
