@group(0) @binding(1) var<storage, read> src_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> at: array<u32>;

@compute @workgroup_size(256)
fn max_pool2d_argmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let pq = p[4] * p[5];
    if (i >= p[0] * p[1] * pq) {
        return;
    }
    let plane = i / pq;
    let h = p[2];
    let w = p[3];
    let h0 = i32(((i % pq) / p[5]) * p[8]) - i32(p[10]);
    let w0 = i32((i % p[5]) * p[9]) - i32(p[11]);
    var best_at = NONE;
    if (p[12] > 0u) {
        best_at = at[i];
    }
    var best = 0.0;
    if (best_at != NONE) {
        best = src_x[best_at];
    }
    // The bound in a register: read from storage on every iteration it
    // costs a load per lane on CPU rasterizers.
    let t_end = p[13];
    for (var t = p[12]; t < t_end; t++) {
        let ih = h0 + i32(t / p[7]);
        let iw = w0 + i32(t % p[7]);
        if (ih < 0 || ih >= i32(h) || iw < 0 || iw >= i32(w)) {
            continue;
        }
        let here = (plane * h + u32(ih)) * w + u32(iw);
        let v = src_x[here];
        if (best_at == NONE || (!is_nan(best) && (is_nan(v) || v > best))) {
            best_at = here;
            best = v;
        }
    }
    at[i] = best_at;
}
