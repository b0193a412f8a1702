// Cumulative sum along one axis, the tensor viewed as [outer, size, inner]:
// one invocation per (outer, inner) line adds in order (from the end when
// p[3] = 1), so the same input gives the same bits. A dispatch covers steps
// p[4]..p[5] of the line, carrying on from the sum the previous dispatch
// stored (no invocation may loop more than MAX_LOOP_TRIPS times, so a long
// axis takes several dispatches): the same additions in the same order.
// p = [outer, size, inner, reverse, first step, end step]

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn cumsum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let size = p[1];
    let inner = p[2];
    if (t >= p[0] * inner) {
        return;
    }
    let base = (t / inner) * size * inner + t % inner;
    let first = p[4];
    var acc = 0.0;
    if (first > 0u) {
        acc = dst[base + select(first - 1u, size - first, p[3] == 1u) * inner];
    }
    // The bound in a register: read from storage on every iteration it
    // costs a load per lane on CPU rasterizers.
    let j_end = p[5];
    for (var j = first; j < j_end; j++) {
        let k = select(j, size - 1u - j, p[3] == 1u);
        acc += x[base + k * inner];
        dst[base + k * inner] = acc;
    }
}
