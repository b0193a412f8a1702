// The fused elementwise kernel four elements at a time: invocation i stores
// elements 4i .. 4i + 3, computed by the generated `value4` (see
// exec/codegen.rs: `value_fn_vec4`), which reads each input buffer of the
// output's shape as vec4. Used where every input has the output's shape,
// one element, or is broadcast along all but a last axis that is a
// multiple of 4 long, and the element count is a multiple of 4.
// p[0] is the number of vec4s; the words after it belong to `value4`.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

{{ value }}

@compute @workgroup_size(256)
fn elementwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p[0]) {
        return;
    }
    dst[i] = value4(i);
}
