// Strided copy: the kernel behind permute, broadcast_to, slice, pad, concat
// and operand gathers (a template: see src/kernel.rs's `strided_copy`).
//
// Element i of the copied window (row-major over its shape) is read from
//   src[src_offset + Σ_d coord_d · src_stride_d]
// and written to
//   dst[dst_offset + Σ_d coord_d · dst_stride_d].
// A broadcast axis has source stride 0. The window's sizes, strides and
// strides are compiled in as constants (`axes`, innermost first, one block
// each): a division by a constant is a multiply and a shift, while a
// division by a value read at run time is, on CPU rasterizers, one scalar
// instruction per lane. Nonzero offsets are read from the parameters
// (`offsets`), so that windows of one shape at many offsets (a concat of many parts,
// its gradient's slices) share one pipeline; a window at offset 0 (a
// permute, a broadcast) reads none.
// p = [n, src_offset, dst_offset]

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn copy_strided(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p[0]) {
        return;
    }
    var rem = i;
    var s = 0u;
    var d = 0u;
{%- if offsets %}
    s = p[1];
    d = p[2];
{%- endif %}
{%- for axis in axes %}
    {
        // The outermost axis takes what is left: no division needed.
        let c = {% if loop.last %}rem{% else %}rem % {{ axis.size }}u{% endif %};
{%- if !loop.last %}
        rem = rem / {{ axis.size }}u;
{%- endif %}
        s += c * {{ axis.src }}u;
        d += c * {{ axis.dst }}u;
    }
{%- endfor %}
    dst[d] = src[s];
}
