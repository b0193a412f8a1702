{% include "index.wgsl" %}
// See index.wgsl for the layout. Bindings: g, idx, out, offsets, order
// (the last two are the segmentation; bound to idx when p[4] = 0), and
// (lines under `check`, kept for indices computed on the GPU) status words.
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> offsets: array<u32>;
@group(0) @binding(5) var<storage, read> order: array<u32>;
{%- if check %}
@group(0) @binding(6) var<storage, read_write> status: array<atomic<u32>>;
{%- endif %}

@compute @workgroup_size(256)
fn index_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let k_count = p[1];
    let inner = p[2];
    let d_count = p[3];
    if (t >= p[0] * d_count * inner) {
        return;
    }
    let i = t % inner;
    let d = (t / inner) % d_count;
    let o = t / (inner * d_count);
    let base = o * k_count * inner + i;
    // Steps p[5]..p[6] of the sum, carrying on from the last dispatch's.
    var acc = 0.0;
    if (p[5] > 0u) {
        acc = dst[t];
    }
    if (p[4] == 1u) {
        let segment_end = offsets[d + 1u];
        let end = min(offsets[d] + p[6], segment_end);
        for (var j = offsets[d] + p[5]; j < end; j++) {
            acc += g[base + order[j] * inner];
        }
    } else {
        // The bound in a register: read from storage on every iteration it
        // costs a load per lane on CPU rasterizers.
        let k_end = p[6];
        for (var k = p[5]; k < k_end; k++) {
{%- if check %}
            if (idx[k] >= d_count) { atomicMax(&status[0], 1u); atomicMax(&status[1], idx[k]); }
{%- endif %}
            if (idx[k] == d) {
                acc += g[base + k * inner];
            }
        }
    }
    dst[t] = acc;
}
