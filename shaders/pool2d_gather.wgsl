@group(0) @binding(1) var<storage, read> at: array<u32>;
@group(0) @binding(2) var<storage, read> src_v: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn max_pool2d_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p[0] * p[1] * p[4] * p[5]) {
        return;
    }
    // Every window covers a pixel (the op refuses shapes where one would
    // not), so `at` names one; the clamp only keeps the load in bounds.
    dst[i] = src_v[min(at[i], p[0] * p[1] * p[2] * p[3] - 1u)];
}
