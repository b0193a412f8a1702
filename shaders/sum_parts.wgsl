// Adds `parts` partial results: dst[i] = Σ_{k < parts} src[k·n + i], in
// order k = 0, 1, ... (the second stage of a reduction split into parts,
// such as conv2d_weight_grad's). p = [n, parts]

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn sum_parts(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let n = p[0];
    if (i >= n) {
        return;
    }
    var acc = 0.0;
    for (var k = 0u; k < p[1]; k++) {
        acc += src[k * n + i];
    }
    dst[i] = acc;
}
