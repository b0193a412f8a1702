// Fused elementwise kernel: one invocation per output element, or, for a
// 16-bit output (`packed`), per 32-bit word of two elements.
//
// The scheduler generates `value(i)`, the fused chain of elementwise ops for
// element i (see exec/codegen.rs), and it fills the `value` hole below
// with its input bindings (src0, src1, ...). p[0] is the element
// count; the words after it belong to `value`: the ops' scalar constants
// (as f32 bits). Shapes and broadcast strides are compiled into `value`.
// A 2-D dispatch grid covers tensors of more than 65,535 workgroups.

@group(0) @binding(0) var<storage, read> p: array<u32>;
{%- if let Some(format) = packed %}
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
{%- else %}
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
{%- endif %}

{{ value }}

@compute @workgroup_size(256)
fn elementwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
{%- if let Some(format) = packed %}
    // Word i: elements 2i (low half) and 2i + 1 (high half; 0 past an odd
    // count), each rounded to {{ format }} (see wg_to_{{ format }}).
    let n = p[0];
    if (2u * i >= n) {
        return;
    }
    let low = wg_to_{{ format }}(value(2u * i));
    var high = 0u;
    if (2u * i + 1u < n) {
        high = wg_to_{{ format }}(value(2u * i + 1u));
    }
    dst[i] = low | (high << 16u);
{%- else %}
    if (i >= p[0]) {
        return;
    }
    dst[i] = value(i);
{%- endif %}
}
