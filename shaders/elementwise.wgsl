// Fused elementwise kernel: one invocation per output element.
//
// The scheduler splices a chain of elementwise ops into this template:
//   INPUTS  one read-only binding per input buffer (src0, src1, ...)
//   BODY    SSA lines, ending in `let r = ...;`
// p[0] is the element count; the words after it hold the output shape, the
// strides of broadcast inputs and the ops' scalar constants (as f32 bits).
// A 2-D dispatch grid covers tensors of more than 65,535 workgroups.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
{{INPUTS}}

// x^c with the conventions of the f64 reference: x^0 = 1, negative x only
// for integer c (sign from c's parity), NaN otherwise.
fn wg_pow(x: f32, c: f32) -> f32 {
    if (c == 0.0) {
        return 1.0;
    }
    if (x == 0.0) {
        return select(0.0, 1.0 / x, c < 0.0);
    }
    if (x > 0.0) {
        return pow(x, c);
    }
    if (fract(c) == 0.0) {
        let m = pow(-x, c);
        return select(m, -m, fract(c * 0.5) != 0.0);
    }
    // NaN built at run time (a NaN constant is rejected by shader compilers).
    return bitcast<f32>(0x7fc00000u | (p[0] & 0u));
}

@compute @workgroup_size(256)
fn elementwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p[0]) {
        return;
    }
{{BODY}}
    dst[i] = r;
}
