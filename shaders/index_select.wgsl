{% include "index.wgsl" %}
// See index.wgsl for the layout. Bindings: x, idx, out, and (lines
// under `check`, kept for indices computed on the GPU) status words.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
{%- if check %}
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>>;
{%- endif %}

@compute @workgroup_size(256)
fn index_select(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let inner = p[2];
    let k_count = p[3];
    if (t >= p[0] * k_count * inner) {
        return;
    }
    let i = t % inner;
    let k = (t / inner) % k_count;
    let o = t / (inner * k_count);
    let j = idx[k];
{%- if check %}
    if (j >= p[1]) { atomicMax(&status[0], 1u); atomicMax(&status[1], j); }
{%- endif %}
    let d = min(j, p[1] - 1u);
    dst[t] = x[(o * p[1] + d) * inner + i];
}
