// Max pooling (NCHW) as a pair of mutually adjoint gathers and scatters.
//
// Window (p, q) of channel (n, c) covers x[n, c, p·sh − ph + r, q·sw − pw + s]
// for r < R, s < S inside the image. Its argmax is the first position in
// row-major window order whose value is greater than every earlier one, a
// NaN winning over any number (the first NaN): NaN propagates, as in numpy.
//
// - max_pool2d_gather:  out[n, c, p, q] = v[argmax of window (p, q) of x]
//   (max_pool2d(x) is gather(x, x); gather(x, dv) is its tangent)
// - max_pool2d_scatter: out[n, c, h, w] = Σ over windows whose argmax is
//   (h, w) of g[n, c, p, q], in a fixed order (the gather's adjoint)
// p = [N, C, H, W, P, Q, R, S, sh, sw, ph, pw]

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> src_x: array<f32>;
@group(0) @binding(2) var<storage, read> src_v: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

fn is_nan(v: f32) -> bool {
    // Bit test: compilers may assume floats are never NaN in comparisons.
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Flat index in x of the argmax of window (p, q) of plane `plane` (= n·C + c).
fn window_argmax(plane: u32, pp: u32, qq: u32) -> u32 {
    let h = p[2];
    let w = p[3];
    let h0 = i32(pp * p[8]) - i32(p[10]);
    let w0 = i32(qq * p[9]) - i32(p[11]);
    var best_at = 0xffffffffu;
    var best = 0.0;
    for (var r = 0u; r < p[6]; r++) {
        let ih = h0 + i32(r);
        if (ih < 0 || ih >= i32(h)) {
            continue;
        }
        for (var s = 0u; s < p[7]; s++) {
            let iw = w0 + i32(s);
            if (iw < 0 || iw >= i32(w)) {
                continue;
            }
            let at = (plane * h + u32(ih)) * w + u32(iw);
            let v = src_x[at];
            if (best_at == 0xffffffffu || (!is_nan(best) && (is_nan(v) || v > best))) {
                best_at = at;
                best = v;
            }
        }
    }
    return best_at;
}

@compute @workgroup_size(256)
fn max_pool2d_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let pq = p[4] * p[5];
    if (i >= p[0] * p[1] * pq) {
        return;
    }
    let plane = i / pq;
    let at = window_argmax(plane, (i % pq) / p[5], i % p[5]);
    dst[i] = src_v[at];
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
    var acc = 0.0;
    for (var r = 0; r < i32(p[6]); r++) {
        let ph = ih + i32(p[10]) - r;
        if (ph < 0 || ph % sh != 0 || ph / sh >= i32(p[4])) {
            continue;
        }
        for (var s = 0; s < i32(p[7]); s++) {
            let pw = iw + i32(p[11]) - s;
            if (pw < 0 || pw % sw != 0 || pw / sw >= i32(p[5])) {
                continue;
            }
            let pp = u32(ph / sh);
            let qq = u32(pw / sw);
            if (window_argmax(plane, pp, qq) == i) {
                acc += src_v[(plane * p[4] + pp) * p[5] + qq];
            }
        }
    }
    dst[i] = acc;
}
