// Dropout mask: element i is 1/(1 − p) with probability 1 − p, else 0,
// from a counter-based hash of (seed, i): integer arithmetic only, so the
// same seed gives the same mask on every adapter, the browser included.
// u = (hash(i) >> 8) · 2⁻²⁴ in [0, 1); the element is kept when u ≥ p.
// hash(i) = pcg(pcg(i ^ seed_lo) ^ seed_hi), pcg the PCG-RXS-M-XS step.
// p = [n, seed_lo, seed_hi, p bits, scale bits]

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

@compute @workgroup_size(256)
fn dropout_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p[0]) {
        return;
    }
    let u = f32(pcg(pcg(i ^ p[1]) ^ p[2]) >> 8u) * (1.0 / 16777216.0);
    dst[i] = select(0.0, bitcast<f32>(p[4]), u >= bitcast<f32>(p[3]));
}
