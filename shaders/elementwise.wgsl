// Fused elementwise kernel: one invocation per output element.
//
// The scheduler generates `value(i)`, the fused chain of elementwise ops for
// element i (see exec/codegen.rs), and it fills the `value` hole below
// with its input bindings (src0, src1, ...). p[0] is the element
// count; the words after it belong to `value`: the ops' scalar constants
// (as f32 bits). Shapes and broadcast strides are compiled into `value`.
// A 2-D dispatch grid covers tensors of more than 65,535 workgroups.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

{{ value }}

@compute @workgroup_size(256)
fn elementwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p[0]) {
        return;
    }
    dst[i] = value(i);
}
