// Reverses one axis, the tensor viewed as [outer, size, inner]: one
// invocation per element copies it from its mirror image along the axis.
// p = [outer, size, inner]

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn flip(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let size = p[1];
    let inner = p[2];
    if (t >= p[0] * size * inner) {
        return;
    }
    let i = t % inner;
    let k = (t / inner) % size;
    let o = t / (inner * size);
    dst[t] = x[(o * size + (size - 1u - k)) * inner + i];
}
