{% include "conv2d_common.wgsl" %}
// 2-D convolution and its adjoints as shared-memory tiled implicit GEMM,
// the variant for real GPUs (the register-blocked conv2d.wgsl is the one
// for CPU rasterizers; the device picks per adapter, as for matmul).
//
// Each of the three ops is a product C[M, N] = Σ_k A[M, k] · B[k, N] per
// group whose operands are read in place from the tensors (nothing is
// unfolded into memory): each op has its own `a_at`, `b_at`, `store` and
// `sizes` functions (the `loaders` the template is rendered with). A 16×16 workgroup computes
// a 64×64 tile of C, each invocation 4×4; per step of 16 along k the
// workgroup stages a 64×16 tile of A and a 16×64 tile of B in workgroup
// memory. Workgroup z = part · G + group: the sum over k may be split into
// `parts` ranges (written at dst[part · M·N·G…], added by sum_parts).
// Geometry as in conv2d.wgsl:
// p = [N, C, H, W, O, P, Q, R, S, sh, sw, ph, pw, dh, dw, G, parts]

// (Bindings, Geometry and geometry() come from conv2d_common.wgsl.)

// x[n, ch, ih, iw] (src_a), or 0 outside the image.
fn x_at(g: Geometry, n: u32, ch: u32, ih: i32, iw: i32) -> f32 {
    let inside = ih >= 0 && iw >= 0 && ih < i32(g.h) && iw < i32(g.w);
    let at = select(0u, ((n * g.c + ch) * g.h + u32(ih)) * g.w + u32(iw), inside);
    return select(0.0, src_a[at], inside);
}

// The forward product's B: tap k = (c, r, s) of output position e = (n, p, q).
fn unfolded(g: Geometry, grp: u32, k: u32, e: u32) -> f32 {
    let c = k / (g.r * g.s);
    let r = (k / g.s) % g.r;
    let s = k % g.s;
    let q = e % g.q;
    let pp = (e / g.q) % g.p;
    let n = e / (g.q * g.p);
    let ih = i32(pp) * g.sh - g.ph + i32(r) * g.dh;
    let iw = i32(q) * g.sw - g.pw + i32(s) * g.dw;
    return x_at(g, n, grp * (g.c / g.groups) + c, ih, iw);
}

{%- match loaders %}
{%- when Loaders::Forward %}
fn sizes(g: Geometry) -> vec3<u32> {
    return vec3<u32>(g.o / g.groups, g.n * g.p * g.q, (g.c / g.groups) * g.r * g.s);
}
fn a_at(g: Geometry, grp: u32, row: u32, k: u32) -> f32 {
    let taps = (g.c / g.groups) * g.r * g.s;
    return src_b[(grp * (g.o / g.groups) + row) * taps + k];
}
fn b_at(g: Geometry, grp: u32, k: u32, col: u32) -> f32 {
    return unfolded(g, grp, k, col);
}
fn store(g: Geometry, grp: u32, part: u32, row: u32, col: u32, v: f32) {
    let q = col % g.q;
    let pp = (col / g.q) % g.p;
    let n = col / (g.q * g.p);
    dst[((n * g.o + grp * (g.o / g.groups) + row) * g.p + pp) * g.q + q] = v;
}
{%- when Loaders::InputGrad %}
fn sizes(g: Geometry) -> vec3<u32> {
    return vec3<u32>(g.c / g.groups, g.n * g.h * g.w, (g.o / g.groups) * g.r * g.s);
}
fn a_at(g: Geometry, grp: u32, row: u32, k: u32) -> f32 {
    let rs = g.r * g.s;
    return src_b[((grp * (g.o / g.groups) + k / rs) * (g.c / g.groups) + row) * rs + k % rs];
}
fn b_at(g: Geometry, grp: u32, k: u32, col: u32) -> f32 {
    let o = k / (g.r * g.s);
    let r = (k / g.s) % g.r;
    let s = k % g.s;
    let iw = col % g.w;
    let ih = (col / g.w) % g.h;
    let n = col / (g.w * g.h);
    let ph = i32(ih) + g.ph - i32(r) * g.dh;
    let pw = i32(iw) + g.pw - i32(s) * g.dw;
    let ok = ph >= 0 && pw >= 0 && ph % g.sh == 0 && pw % g.sw == 0
        && ph / g.sh < i32(g.p) && pw / g.sw < i32(g.q);
    let at = select(0u, ((n * g.o + grp * (g.o / g.groups) + o) * g.p + u32(ph / g.sh)) * g.q + u32(pw / g.sw), ok);
    return select(0.0, src_a[at], ok);
}
fn store(g: Geometry, grp: u32, part: u32, row: u32, col: u32, v: f32) {
    let iw = col % g.w;
    let ih = (col / g.w) % g.h;
    let n = col / (g.w * g.h);
    dst[((n * g.c + grp * (g.c / g.groups) + row) * g.h + ih) * g.w + iw] = v;
}
{%- when Loaders::WeightGrad %}
fn sizes(g: Geometry) -> vec3<u32> {
    return vec3<u32>(g.o / g.groups, (g.c / g.groups) * g.r * g.s, g.n * g.p * g.q);
}
fn a_at(g: Geometry, grp: u32, row: u32, e: u32) -> f32 {
    let q = e % g.q;
    let pp = (e / g.q) % g.p;
    let n = e / (g.q * g.p);
    return src_b[((n * g.o + grp * (g.o / g.groups) + row) * g.p + pp) * g.q + q];
}
fn b_at(g: Geometry, grp: u32, e: u32, col: u32) -> f32 {
    return unfolded(g, grp, col, e);
}
fn store(g: Geometry, grp: u32, part: u32, row: u32, col: u32, v: f32) {
    let taps = (g.c / g.groups) * g.r * g.s;
    dst[part * g.o * taps + (grp * (g.o / g.groups) + row) * taps + col] = v;
}
{%- endmatch %}

var<workgroup> tile_a: array<f32, 1024>; // 64 rows × 16
var<workgroup> tile_b: array<f32, 1024>; // 16 × 64 columns

@compute @workgroup_size(16, 16, 1)
fn conv2d_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = geometry();
    let mnk = sizes(g);
    let grp = wg.z % g.groups;
    let part = wg.z / g.groups;
    let k_begin = mnk.z * part / g.parts;
    let k_end = mnk.z * (part + 1u) / g.parts;
    let row0 = wg.y * 64u;
    let col0 = wg.x * 64u;
    let tid = lid.y * 16u + lid.x;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = k_begin; k0 < k_end; k0 += 16u) {
        for (var e = 0u; e < 4u; e++) {
            let idx = tid + e * 256u;
            let ar = row0 + idx / 16u;
            let ak = k0 + idx % 16u;
            tile_a[idx] = select(0.0, a_at(g, grp, min(ar, mnk.x - 1u), min(ak, k_end - 1u)), ar < mnk.x && ak < k_end);
            let bk = k0 + idx / 64u;
            let bc = col0 + idx % 64u;
            tile_b[idx] = select(0.0, b_at(g, grp, min(bk, k_end - 1u), min(bc, mnk.y - 1u)), bk < k_end && bc < mnk.y);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            let bo = kk * 64u + lid.x * 4u;
            let bv = vec4<f32>(tile_b[bo], tile_b[bo + 1u], tile_b[bo + 2u], tile_b[bo + 3u]);
            let ao = lid.y * 64u + kk;
            acc0 += tile_a[ao] * bv;
            acc1 += tile_a[ao + 16u] * bv;
            acc2 += tile_a[ao + 32u] * bv;
            acc3 += tile_a[ao + 48u] * bv;
        }
        workgroupBarrier();
    }
    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r++) {
        let row = row0 + lid.y * 4u + r;
        for (var i = 0u; i < 4u; i++) {
            let col = col0 + lid.x * 4u + i;
            if (row < mnk.x && col < mnk.y) {
                store(g, grp, part, row, col, accs[r][i]);
            }
        }
    }
}
