// Strided copy: the kernel behind permute, broadcast_to, slice, pad and concat.
//
// Element i of the copied window (row-major over `shape`) is read from
//   src[src_offset + Σ_d coord_d · src_stride_d]
// and written to
//   dst[dst_offset + Σ_d coord_d · dst_stride_d].
// A broadcast axis has source stride 0.
// p = [n, rank, src_offset, dst_offset, shape[8], src_strides[8], dst_strides[8]]

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
    var s = p[2];
    var d = p[3];
    for (var axis = p[1]; axis > 0u; axis--) {
        let k = axis - 1u;
        let dim = p[4u + k];
        let coord = rem % dim;
        rem = rem / dim;
        s += coord * p[12u + k];
        d += coord * p[20u + k];
    }
    dst[d] = src[s];
}
