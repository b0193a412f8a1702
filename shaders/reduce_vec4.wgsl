// `reduce.wgsl` for rows that are contiguous runs of a multiple of 4
// elements starting at multiples of 4: the generated `value4(i)` gives
// elements 4i .. 4i + 3, each invocation keeps four accumulators (one per
// component, each folding its own elements in a fixed order) and combines
// them at the end as (x ∘ y) ∘ (z ∘ w). Fixed order: the same input gives
// the same bits.
// p = [M, K/4, so/4, 1, P, words of `value4`...]

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

{{ value }}

fn combine(acc: f32, v: f32) -> f32 {
    return {{ combine }};
}

@compute @workgroup_size(256)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let parts = p[4];
    if (t >= p[0] * parts) {
        return;
    }
    let o = t / parts;
    let k = p[1];
    let base = o * p[2];
    var acc = vec4<f32>({{ identity }});
    for (var j = t % parts; j < k; j += parts) {
        let v = value4(base + j);
        acc = vec4<f32>(combine(acc.x, v.x), combine(acc.y, v.y), combine(acc.z, v.z), combine(acc.w, v.w));
    }
    dst[t] = combine(combine(acc.x, acc.y), combine(acc.z, acc.w));
}
