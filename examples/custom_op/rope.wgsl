// Rotary position embedding in one pass: each invocation rotates one pair
// (x[2i], x[2i+1]) of a row at position t by the angle t·θ_i, with
// θ_i = base^(−2i/d); the inverse rotates by −t·θ_i.
//
// p[0]: pairs in the tensor; p[1]: positions T (the second-to-last axis);
// p[2]: pairs per row, d/2; p[3]: log2(base) as f32 bits; p[4]: the
// rotation's direction, 1.0 or −1.0, as f32 bits.

// Invocations per workgroup: the op's variants differ only in this line.
const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn rope(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    // A large grid spills into y (webgrad::op::grid_1d_of).
    let pair = id.x + id.y * groups.x * WG;
    if pair >= p[0] {
        return;
    }
    let half = p[2];
    let i = pair % half;
    let t = (pair / half) % p[1];
    let theta = exp2(-f32(2u * i) / f32(2u * half) * bitcast<f32>(p[3]));
    let angle = f32(t) * theta;
    let c = cos(angle);
    let s = bitcast<f32>(p[4]) * sin(angle);
    let a = x[2u * pair];
    let b = x[2u * pair + 1u];
    y[2u * pair] = a * c - b * s;
    y[2u * pair + 1u] = a * s + b * c;
}
