// What the convolution kernels share (included by conv2d.wgsl and
// conv2d_tiled.wgsl): the bindings and the forward convolution's geometry,
// x [N, C, H, W], w [O, C/G, R, S], y [N, O, P, Q].
// p = [N, C, H, W, O, P, Q, R, S, sh, sw, ph, pw, dh, dw, G, parts,
//      first, end, carry on]
// The last three split a register-blocked kernel's longest loop over
// dispatches (no invocation may loop more than MAX_LOOP_TRIPS times:
// lavapipe stops at 65,535, silently): the loop runs from `first` to `end`
// and, with `carry on` = 1, its sums start from what the last dispatch
// stored, so they are the same additions in the same order as one loop.

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

// Four consecutive values of dst from `at`, the last `count − 1` − `first`
// clamped: the sums a previous dispatch stored (never stored past the edge).
fn carried(base: u32, first: u32, count: u32) -> vec4<f32> {
    let last = count - 1u;
    return vec4<f32>(dst[base + min(first, last)], dst[base + min(first + 1u, last)],
                     dst[base + min(first + 2u, last)], dst[base + min(first + 3u, last)]);
}

fn geometry() -> Geometry {
    return Geometry(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8],
        i32(p[9]), i32(p[10]), i32(p[11]), i32(p[12]), i32(p[13]), i32(p[14]), p[15], p[16]);
}

