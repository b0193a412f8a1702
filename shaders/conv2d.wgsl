{% include "conv2d_common.wgsl" %}
// 2-D convolution (NCHW) and its two adjoints, as implicit GEMM: each
// invocation reads the input values it needs straight from the tensors, so
// no unfolded (im2col) copy of the input is ever written.
//
// All three entry points share one geometry, that of the forward
// convolution y = conv2d(x, w):
//   x [N, C, H, W],  w [O, C/G, R, S],  y [N, O, P, Q]
//   y[n, o, p, q] = Σ_{c, r, s} w[o, c, r, s] · x[n, g·C/G + c, p·sh − ph + r·dh, q·sw − pw + s·dw]
// (g = o / (O/G) is the group of output channel o; out-of-range x reads 0).
// p = [N, C, H, W, O, P, Q, R, S, sh, sw, ph, pw, dh, dw, G, parts]
//
// - conv2d:              y from x and w
// - conv2d_input_grad:   x-shaped from y-shaped and w, the transposed convolution
// - conv2d_weight_grad:  w-shaped from x and y-shaped, a correlation; its sum
//                        over (n, p) rows is split into `parts` ranges that
//                        sum_parts adds up
// Register-blocked for CPU rasterizers (lavapipe): each invocation computes
// a block of outputs (8×4, 4×4 or 8×4) so that every loaded value feeds
// several multiply-adds; no workgroup memory or barriers. Loads outside the
// image are masked with select, not branched around. Every invocation sums
// in a fixed order: the same inputs give the same bits.
// The unrolled lines were written out by a short script.

// (Bindings, Geometry and geometry() come from conv2d_common.wgsl.)

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// src_a[plane + ih·W + iw] (a plane of x), or 0 outside the image.
fn load_a(g: Geometry, plane: u32, ih: i32, iw: i32) -> f32 {
    let inside = ih >= 0 && iw >= 0 && ih < i32(g.h) && iw < i32(g.w);
    let at = select(0u, plane + u32(ih) * g.w + u32(iw), inside);
    return select(0.0, src_a[at], inside);
}

// y = conv2d(x = src_a, w = src_b). Invocation: (n, group, block of 8
// channels of the group, p, block of 4 columns q): 32 outputs.
@compute @workgroup_size(64)
fn conv2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = geometry();
    let og = g.o / g.groups;
    let cg = g.c / g.groups;
    let oblocks = (og + 7u) / 8u;
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
    let o0 = grp * og + ob * 8u;
    let olast = grp * og + og - 1u;
    let q0 = qb * 4u;
    let taps = cg * g.r * g.s;
    let w0 = min(o0 + 0u, olast) * taps;
    let w1 = min(o0 + 1u, olast) * taps;
    let w2 = min(o0 + 2u, olast) * taps;
    let w3 = min(o0 + 3u, olast) * taps;
    let w4 = min(o0 + 4u, olast) * taps;
    let w5 = min(o0 + 5u, olast) * taps;
    let w6 = min(o0 + 6u, olast) * taps;
    let w7 = min(o0 + 7u, olast) * taps;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    if (p[19] == 1u) {
        acc0 = carried(((n * g.o + min(o0 + 0u, olast)) * g.p + pp) * g.q, q0, g.q);
        acc1 = carried(((n * g.o + min(o0 + 1u, olast)) * g.p + pp) * g.q, q0, g.q);
        acc2 = carried(((n * g.o + min(o0 + 2u, olast)) * g.p + pp) * g.q, q0, g.q);
        acc3 = carried(((n * g.o + min(o0 + 3u, olast)) * g.p + pp) * g.q, q0, g.q);
        acc4 = carried(((n * g.o + min(o0 + 4u, olast)) * g.p + pp) * g.q, q0, g.q);
        acc5 = carried(((n * g.o + min(o0 + 5u, olast)) * g.p + pp) * g.q, q0, g.q);
        acc6 = carried(((n * g.o + min(o0 + 6u, olast)) * g.p + pp) * g.q, q0, g.q);
        acc7 = carried(((n * g.o + min(o0 + 7u, olast)) * g.p + pp) * g.q, q0, g.q);
    }
    let iw0 = i32(q0) * g.sw - g.pw;
    // The bound in a register: read from storage on every iteration it
    // costs a load per lane on CPU rasterizers.
    let c_end = p[18];
    for (var c = p[17]; c < c_end; c++) {
        let plane = (n * g.c + grp * cg + c) * g.h * g.w;
        for (var r = 0u; r < g.r; r++) {
            // A row of padding is not skipped: padding is zeros that
            // multiply like any value (∞·0 = NaN, as in PyTorch).
            let ih = i32(pp) * g.sh - g.ph + i32(r) * g.dh;
            for (var s = 0u; s < g.s; s++) {
                let iw = iw0 + i32(s) * g.dw;
                let xv = vec4<f32>(
                    load_a(g, plane, ih, iw),
                    load_a(g, plane, ih, iw + g.sw),
                    load_a(g, plane, ih, iw + 2 * g.sw),
                    load_a(g, plane, ih, iw + 3 * g.sw),
                );
                let k = (c * g.r + r) * g.s + s;
                acc0 += src_b[w0 + k] * xv;
                acc1 += src_b[w1 + k] * xv;
                acc2 += src_b[w2 + k] * xv;
                acc3 += src_b[w3 + k] * xv;
                acc4 += src_b[w4 + k] * xv;
                acc5 += src_b[w5 + k] * xv;
                acc6 += src_b[w6 + k] * xv;
                acc7 += src_b[w7 + k] * xv;
            }
        }
    }
    var acc = array<vec4<f32>, 8>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7);
    for (var j = 0u; j < 8u; j++) {
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
// Invocation: (n, group, block of 4 channels of the group, h, block of 4
// columns w): 16 outputs.
@compute @workgroup_size(64)
fn conv2d_input_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = geometry();
    // The split loop's bounds, in registers (see conv2d).
    let oo_first = p[17];
    let oo_end = p[18];
    let og = g.o / g.groups;
    let cg = g.c / g.groups;
    let cblocks = (cg + 3u) / 4u;
    let wblocks = (g.w + 3u) / 4u;
    var t = linear_id(gid, nwg);
    if (t >= g.n * g.groups * cblocks * g.h * wblocks) {
        return;
    }
    let wb = t % wblocks; t = t / wblocks;
    let ih = i32(t % g.h); t = t / g.h;
    let cb = t % cblocks; t = t / cblocks;
    let grp = t % g.groups;
    let n = t / g.groups;
    let c0 = cb * 4u;
    let clast = cg - 1u;
    let iw0 = i32(wb * 4u);
    let taps = g.r * g.s;
    let wc0 = min(c0 + 0u, clast) * taps;
    let wc1 = min(c0 + 1u, clast) * taps;
    let wc2 = min(c0 + 2u, clast) * taps;
    let wc3 = min(c0 + 3u, clast) * taps;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    if (p[19] == 1u) {
        acc0 = carried(((n * g.c + grp * cg + min(c0 + 0u, clast)) * g.h + u32(ih)) * g.w, u32(iw0), g.w);
        acc1 = carried(((n * g.c + grp * cg + min(c0 + 1u, clast)) * g.h + u32(ih)) * g.w, u32(iw0), g.w);
        acc2 = carried(((n * g.c + grp * cg + min(c0 + 2u, clast)) * g.h + u32(ih)) * g.w, u32(iw0), g.w);
        acc3 = carried(((n * g.c + grp * cg + min(c0 + 3u, clast)) * g.h + u32(ih)) * g.w, u32(iw0), g.w);
    }
    for (var r = 0u; r < g.r; r++) {
        let ph = ih + g.ph - i32(r) * g.dh;
        // A row of taps that meets no output multiplies zeros, as padding
        // does in the forward pass (not skipped: an infinite weight gives
        // NaN here as it does in the tiled kernel and the reference).
        let row_ok = ph >= 0 && ph % g.sh == 0 && ph / g.sh < i32(g.p);
        let pp = select(0u, u32(ph / g.sh), row_ok);
        for (var s = 0u; s < g.s; s++) {
            let pw = iw0 + g.pw - i32(s) * g.dw;
            // Column i of the block reads dy at q = (pw + i) / sw where that divides.
            let v0 = row_ok && pw + 0 >= 0 && (pw + 0) % g.sw == 0 && (pw + 0) / g.sw < i32(g.q) && iw0 + 0 < i32(g.w);
            let q0 = select(0u, u32((pw + 0) / g.sw), v0);
            let v1 = row_ok && pw + 1 >= 0 && (pw + 1) % g.sw == 0 && (pw + 1) / g.sw < i32(g.q) && iw0 + 1 < i32(g.w);
            let q1 = select(0u, u32((pw + 1) / g.sw), v1);
            let v2 = row_ok && pw + 2 >= 0 && (pw + 2) % g.sw == 0 && (pw + 2) / g.sw < i32(g.q) && iw0 + 2 < i32(g.w);
            let q2 = select(0u, u32((pw + 2) / g.sw), v2);
            let v3 = row_ok && pw + 3 >= 0 && (pw + 3) % g.sw == 0 && (pw + 3) / g.sw < i32(g.q) && iw0 + 3 < i32(g.w);
            let q3 = select(0u, u32((pw + 3) / g.sw), v3);
            let k = r * g.s + s;
            for (var oo = oo_first; oo < oo_end; oo++) {
                let o = grp * og + oo;
                let row = ((n * g.o + o) * g.p + pp) * g.q;
                let dy = vec4<f32>(
                    select(0.0, src_a[row + q0], v0),
                    select(0.0, src_a[row + q1], v1),
                    select(0.0, src_a[row + q2], v2),
                    select(0.0, src_a[row + q3], v3),
                );
                let wo = o * cg * taps + k;
                acc0 += src_b[wo + wc0] * dy;
                acc1 += src_b[wo + wc1] * dy;
                acc2 += src_b[wo + wc2] * dy;
                acc3 += src_b[wo + wc3] * dy;
            }
        }
    }
    var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var j = 0u; j < 4u; j++) {
        if (c0 + j > clast) {
            break;
        }
        let base = ((n * g.c + grp * cg + c0 + j) * g.h + u32(ih)) * g.w;
        for (var i = 0u; i < 4u; i++) {
            if (u32(iw0) + i < g.w) {
                dst[base + u32(iw0) + i] = acc[j][i];
            }
        }
    }
}

// w-shaped correlation of x = src_a with dy = src_b, summed over the
// `part`-th of `parts` equal ranges of the N·P rows (n, p):
//   dw[o, c, r, s] = Σ_{n, p, q} dy[n, o, p, q] · x[n, g·C/G + c, p·sh − ph + r·dh, q·sw − pw + s·dw]
// Writes dst[part · numel(w) + index of (o, c, r, s)]. Invocation: (part,
// group, block of 8 channels of the group, block of 4 taps (c, r, s)): 32 outputs.
@compute @workgroup_size(64)
fn conv2d_weight_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = geometry();
    // The split loop's bounds, in registers (see conv2d).
    let qq_first = p[17];
    let qq_end = p[18];
    let og = g.o / g.groups;
    let cg = g.c / g.groups;
    let taps = cg * g.r * g.s;
    let oblocks = (og + 7u) / 8u;
    let kblocks = (taps + 3u) / 4u;
    var t = linear_id(gid, nwg);
    if (t >= g.parts * g.groups * oblocks * kblocks) {
        return;
    }
    let kb = t % kblocks; t = t / kblocks;
    let ob = t % oblocks; t = t / oblocks;
    let grp = t % g.groups;
    let part = t / g.groups;
    let o0 = grp * og + ob * 8u;
    let olast = grp * og + og - 1u;
    let kfirst = kb * 4u;
    let pq = g.p * g.q;
    let k0 = min(kfirst + 0u, taps - 1u);
    let c0 = grp * cg + k0 / (g.r * g.s);
    let r0 = i32((k0 / g.s) % g.r) * g.dh - g.ph;
    let s0 = i32(k0 % g.s) * g.dw - g.pw;
    let k1 = min(kfirst + 1u, taps - 1u);
    let c1 = grp * cg + k1 / (g.r * g.s);
    let r1 = i32((k1 / g.s) % g.r) * g.dh - g.ph;
    let s1 = i32(k1 % g.s) * g.dw - g.pw;
    let k2 = min(kfirst + 2u, taps - 1u);
    let c2 = grp * cg + k2 / (g.r * g.s);
    let r2 = i32((k2 / g.s) % g.r) * g.dh - g.ph;
    let s2 = i32(k2 % g.s) * g.dw - g.pw;
    let k3 = min(kfirst + 3u, taps - 1u);
    let c3 = grp * cg + k3 / (g.r * g.s);
    let r3 = i32((k3 / g.s) % g.r) * g.dh - g.ph;
    let s3 = i32(k3 % g.s) * g.dw - g.pw;
    let y0 = min(o0 + 0u, olast) * pq;
    let y1 = min(o0 + 1u, olast) * pq;
    let y2 = min(o0 + 2u, olast) * pq;
    let y3 = min(o0 + 3u, olast) * pq;
    let y4 = min(o0 + 4u, olast) * pq;
    let y5 = min(o0 + 5u, olast) * pq;
    let y6 = min(o0 + 6u, olast) * pq;
    let y7 = min(o0 + 7u, olast) * pq;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    if (p[19] == 1u) {
        acc0 = carried(part * g.o * taps + min(o0 + 0u, olast) * taps, kfirst, taps);
        acc1 = carried(part * g.o * taps + min(o0 + 1u, olast) * taps, kfirst, taps);
        acc2 = carried(part * g.o * taps + min(o0 + 2u, olast) * taps, kfirst, taps);
        acc3 = carried(part * g.o * taps + min(o0 + 3u, olast) * taps, kfirst, taps);
        acc4 = carried(part * g.o * taps + min(o0 + 4u, olast) * taps, kfirst, taps);
        acc5 = carried(part * g.o * taps + min(o0 + 5u, olast) * taps, kfirst, taps);
        acc6 = carried(part * g.o * taps + min(o0 + 6u, olast) * taps, kfirst, taps);
        acc7 = carried(part * g.o * taps + min(o0 + 7u, olast) * taps, kfirst, taps);
    }
    let rows = g.n * g.p;
    let begin = rows * part / g.parts;
    let end = rows * (part + 1u) / g.parts;
    for (var row = begin; row < end; row++) {
        let n = row / g.p;
        let pp = row % g.p;
        let ih = i32(pp) * g.sh;
        let ybase = n * g.o * pq + pp * g.q;
        let plane0 = (n * g.c + c0) * g.h * g.w;
        let plane1 = (n * g.c + c1) * g.h * g.w;
        let plane2 = (n * g.c + c2) * g.h * g.w;
        let plane3 = (n * g.c + c3) * g.h * g.w;
        for (var qq = qq_first; qq < qq_end; qq++) {
            let iw = i32(qq) * g.sw;
            let xv = vec4<f32>(
                load_a(g, plane0, ih + r0, iw + s0),
                load_a(g, plane1, ih + r1, iw + s1),
                load_a(g, plane2, ih + r2, iw + s2),
                load_a(g, plane3, ih + r3, iw + s3),
            );
            let y = ybase + qq;
            acc0 += src_b[y + y0] * xv;
            acc1 += src_b[y + y1] * xv;
            acc2 += src_b[y + y2] * xv;
            acc3 += src_b[y + y3] * xv;
            acc4 += src_b[y + y4] * xv;
            acc5 += src_b[y + y5] * xv;
            acc6 += src_b[y + y6] * xv;
            acc7 += src_b[y + y7] * xv;
        }
    }
    var acc = array<vec4<f32>, 8>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7);
    let wn = g.o * taps;
    for (var j = 0u; j < 8u; j++) {
        let o = o0 + j;
        if (o > olast) {
            break;
        }
        for (var i = 0u; i < 4u; i++) {
            if (kfirst + i < taps) {
                dst[part * wn + o * taps + kfirst + i] = acc[j][i];
            }
        }
    }
}
