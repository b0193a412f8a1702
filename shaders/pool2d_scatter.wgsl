@group(0) @binding(1) var<storage, read> at: array<u32>;
@group(0) @binding(2) var<storage, read> src_g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

// The window rows r (or columns s) whose window covers image row (column)
// `a` − padding: r ≤ a, a − r a multiple of the stride `st`, (a − r)/st
// below the window count `windows`, r below the kernel size `k`. Returns
// (first r, how many), stepping by the stride.
fn covering(a: i32, st: i32, windows: i32, k: i32) -> vec2<i32> {
    let lo = max(0, a - (windows - 1) * st);
    let first = lo + (a - lo) % st;
    let last = min(k - 1, a);
    return vec2<i32>(first, select(0, (last - first) / st + 1, first <= last));
}

@compute @workgroup_size(256)
fn max_pool2d_scatter(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let hw = p[2] * p[3];
    if (i >= p[0] * p[1] * hw) {
        return;
    }
    let plane = i / hw;
    let ih = i32((i % hw) / p[3]);
    let iw = i32(i % p[3]);
    let sh = i32(p[8]);
    let sw = i32(p[9]);
    let rows = covering(ih + i32(p[10]), sh, i32(p[4]), i32(p[6]));
    let cols = covering(iw + i32(p[11]), sw, i32(p[5]), i32(p[7]));
    var acc = 0.0;
    if (p[12] > 0u) {
        acc = dst[i];
    }
    // The windows covering (ih, iw), r then s ascending: steps p[12]..p[13]
    // of the rows.y · cols.y of them.
    let count = u32(rows.y * cols.y);
    // The bound in a register: read from storage on every iteration it
    // costs a load per lane on CPU rasterizers.
    let t_end = min(p[13], count);
    for (var t = p[12]; t < t_end; t++) {
        let r = rows.x + i32(t / u32(cols.y)) * sh;
        let s = cols.x + i32(t % u32(cols.y)) * sw;
        let pp = u32((ih + i32(p[10]) - r) / sh);
        let qq = u32((iw + i32(p[11]) - s) / sw);
        let window = (plane * p[4] + pp) * p[5] + qq;
        if (at[window] == i) {
            acc += src_g[window];
        }
    }
    dst[i] = acc;
}
