// 2-D convolution (NCHW) and its two adjoints, as implicit GEMM: each
// invocation reads the input window it needs straight from the tensors, so
// no unfolded (im2col) copy of the input is ever written.
//
// All three entry points share one geometry, that of the forward
// convolution y = conv2d(x, w):
//   x [N, C, H, W],  w [O, C/G, R, S],  y [N, O, P, Q]
//   y[n, o, p, q] = Σ_{c, r, s} w[o, c, r, s] · x[n, g·C/G + c, p·sh − ph + r·dh, q·sw − pw + s·dw]
// (g = o / (O/G) is the group of output channel o; out-of-range x reads 0).
// p = [N, C, H, W, O, P, Q, R, S, sh, sw, ph, pw, dh, dw, G, parts]
//
// - conv2d:              y from x and w (4 output channels × 4 columns per invocation)
// - conv2d_input_grad:   x-shaped from y-shaped and w, the transposed convolution
// - conv2d_weight_grad:  w-shaped from x and y-shaped, a correlation, its sum
//                        over n, p, q split into `parts` ranges (sum_parts adds them)
// Every invocation sums in a fixed order: the same inputs give the same bits.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> src_a: array<f32>;
@group(0) @binding(2) var<storage, read> src_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

struct Geometry {
    n: u32, c: u32, h: u32, w: u32,
    o: u32, p: u32, q: u32, r: u32, s: u32,
    sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32,
    groups: u32, parts: u32,
}

fn geometry() -> Geometry {
    return Geometry(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8],
        i32(p[9]), i32(p[10]), i32(p[11]), i32(p[12]), i32(p[13]), i32(p[14]), p[15], p[16]);
}

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// x[n, ch, ih, iw], or 0 outside the image (padding).
fn load_x(g: Geometry, n: u32, ch: u32, ih: i32, iw: i32) -> f32 {
    if (ih < 0 || iw < 0 || ih >= i32(g.h) || iw >= i32(g.w)) {
        return 0.0;
    }
    return src_a[((n * g.c + ch) * g.h + u32(ih)) * g.w + u32(iw)];
}

// y = conv2d(x = src_a, w = src_b). Invocation: (n, group, block of 4
// channels in the group, p, block of 4 columns q).
@compute @workgroup_size(64)
fn conv2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = geometry();
    let og = g.o / g.groups;
    let cg = g.c / g.groups;
    let oblocks = (og + 3u) / 4u;
    let qblocks = (g.q + 3u) / 4u;
    var t = linear_id(gid, nwg);
    if (t >= g.n * g.groups * oblocks * g.p * qblocks) {
        return;
    }
    let qb = t % qblocks; t = t / qblocks;
    let pp = t % g.p; t = t / g.p;
    let ob = t % oblocks; t = t / oblocks;
    let grp = t % g.groups;
    let n = t / g.groups;
    let o0 = grp * og + ob * 4u;
    let olast = grp * og + og - 1u;
    let q0 = qb * 4u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let wstride = cg * g.r * g.s;
    let w0 = min(o0, olast) * wstride;
    let w1 = min(o0 + 1u, olast) * wstride;
    let w2 = min(o0 + 2u, olast) * wstride;
    let w3 = min(o0 + 3u, olast) * wstride;
    for (var c = 0u; c < cg; c++) {
        let ch = grp * cg + c;
        for (var r = 0u; r < g.r; r++) {
            let ih = i32(pp) * g.sh - g.ph + i32(r) * g.dh;
            if (ih < 0 || ih >= i32(g.h)) {
                continue;
            }
            for (var s = 0u; s < g.s; s++) {
                let iw = i32(q0) * g.sw - g.pw + i32(s) * g.dw;
                let xv = vec4<f32>(
                    load_x(g, n, ch, ih, iw),
                    load_x(g, n, ch, ih, iw + g.sw),
                    load_x(g, n, ch, ih, iw + 2 * g.sw),
                    load_x(g, n, ch, ih, iw + 3 * g.sw),
                );
                let k = (c * g.r + r) * g.s + s;
                acc0 += src_b[w0 + k] * xv;
                acc1 += src_b[w1 + k] * xv;
                acc2 += src_b[w2 + k] * xv;
                acc3 += src_b[w3 + k] * xv;
            }
        }
    }
    var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var j = 0u; j < 4u; j++) {
        let o = o0 + j;
        if (o > olast) {
            break;
        }
        let base = ((n * g.o + o) * g.p + pp) * g.q;
        for (var i = 0u; i < 4u; i++) {
            if (q0 + i < g.q) {
                dst[base + q0 + i] = acc[j][i];
            }
        }
    }
}

// x-shaped result of the transposed convolution of dy = src_a with w = src_b:
//   dx[n, ch, h, w] = Σ_{o in ch's group, r, s} dy[n, o, p, q] · w[o, ch − g·C/G, r, s]
// over the (p, q) with p·sh − ph + r·dh = h and q·sw − pw + s·dw = w.
// Invocation: (n, group, block of 4 channels in the group, h, w).
@compute @workgroup_size(64)
fn conv2d_input_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = geometry();
    let og = g.o / g.groups;
    let cg = g.c / g.groups;
    let cblocks = (cg + 3u) / 4u;
    var t = linear_id(gid, nwg);
    if (t >= g.n * g.groups * cblocks * g.h * g.w) {
        return;
    }
    let iw = i32(t % g.w); t = t / g.w;
    let ih = i32(t % g.h); t = t / g.h;
    let cb = t % cblocks; t = t / cblocks;
    let grp = t % g.groups;
    let n = t / g.groups;
    let c0 = cb * 4u;
    let clast = cg - 1u;
    let wk = g.r * g.s;
    let c_0 = min(c0, clast) * wk;
    let c_1 = min(c0 + 1u, clast) * wk;
    let c_2 = min(c0 + 2u, clast) * wk;
    let c_3 = min(c0 + 3u, clast) * wk;
    var acc = vec4<f32>(0.0);
    for (var r = 0u; r < g.r; r++) {
        let ph = ih + g.ph - i32(r) * g.dh;
        if (ph < 0 || ph % g.sh != 0 || ph / g.sh >= i32(g.p)) {
            continue;
        }
        let pp = u32(ph / g.sh);
        for (var s = 0u; s < g.s; s++) {
            let pw = iw + g.pw - i32(s) * g.dw;
            if (pw < 0 || pw % g.sw != 0 || pw / g.sw >= i32(g.q)) {
                continue;
            }
            let qq = u32(pw / g.sw);
            let k = r * g.s + s;
            for (var oo = 0u; oo < og; oo++) {
                let o = grp * og + oo;
                let dy = src_a[((n * g.o + o) * g.p + pp) * g.q + qq];
                let wo = o * cg * wk + k;
                acc += dy * vec4<f32>(src_b[wo + c_0], src_b[wo + c_1], src_b[wo + c_2], src_b[wo + c_3]);
            }
        }
    }
    for (var j = 0u; j < 4u; j++) {
        if (c0 + j > clast) {
            break;
        }
        let ch = grp * cg + c0 + j;
        dst[((n * g.c + ch) * g.h + u32(ih)) * g.w + u32(iw)] = acc[j];
    }
}

// w-shaped correlation of x = src_a with dy = src_b, summed over the
// `part`-th of `parts` equal ranges of (n, p, q):
//   dw[o, c, r, s] = Σ_{n, p, q} dy[n, o, p, q] · x[n, g·C/G + c, p·sh − ph + r·dh, q·sw − pw + s·dw]
// Writes dst[part · numel(w) + index of (o, c, r, s)]; one invocation per
// (part, o, c, r, s).
@compute @workgroup_size(64)
fn conv2d_weight_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = geometry();
    let og = g.o / g.groups;
    let cg = g.c / g.groups;
    let wn = g.o * cg * g.r * g.s;
    var t = linear_id(gid, nwg);
    if (t >= wn * g.parts) {
        return;
    }
    let widx = t % wn;
    let part = t / wn;
    var u = widx;
    let s = u % g.s; u = u / g.s;
    let r = u % g.r; u = u / g.r;
    let c = u % cg;
    let o = u / cg;
    let ch = (o / og) * cg + c;
    let total = g.n * g.p * g.q;
    let begin = total * part / g.parts;
    let end = total * (part + 1u) / g.parts;
    var acc = 0.0;
    for (var e = begin; e < end; e++) {
        let qq = e % g.q;
        let pp = (e / g.q) % g.p;
        let n = e / (g.q * g.p);
        let ih = i32(pp) * g.sh - g.ph + i32(r) * g.dh;
        let iw = i32(qq) * g.sw - g.pw + i32(s) * g.dw;
        acc += src_b[((n * g.o + o) * g.p + pp) * g.q + qq] * load_x(g, n, ch, ih, iw);
    }
    dst[part * wn + widx] = acc;
}
