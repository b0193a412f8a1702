{%- import "matmul_blocks.wgsl" as blocks -%}
// matmul_tn: Aᵀ·B with A stored [k, m], the ∂L/∂B = Aᵀ·G of the backward
// pass, read in place: per step along K one vec4 pair of A's column
// (8 rows of op(A)) and four vec4 of B's row, an outer product into the
// same 8×16 block of accumulators as matmul_vec4 (as many loads per
// multiply-add). For M and N multiples of 4.
// p = [M, N, K, batch, a_batch_stride, b_batch_stride, first_batch, first
//      step, end step, carry on]

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

@compute @workgroup_size(8, 8, 1)
fn matmul_tn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = p[0];
    let n4 = p[1] / 4u;
    let k = p[2];
    let m4 = m / 4u;
    let row0 = gid.y * 8u;
    let col0 = gid.x * 4u;
    if (row0 >= m || col0 >= n4) {
        return;
    }
    let batch = gid.z + p[6];
    let ab = batch * (p[4] / 4u);
    let bb = batch * (p[5] / 4u);
    let cb = batch * m * n4;
    let ac0 = ab + min(row0 / 4u, m4 - 1u);
    let ac1 = ab + min(row0 / 4u + 1u, m4 - 1u);
{%- for q in 0..4 %}
    let bc{{q}} = bb + min(col0 + {{q}}u, n4 - 1u);
{%- endfor %}
{%- call blocks::accumulators(8, 4, 9, true) %}{% endcall %}
    let kk_end = p[8];
    for (var kk = p[7]; kk < kk_end; kk++) {
        let ar = kk * m4;
        let br = kk * n4;
        let a0 = a[ac0 + ar];
        let a1 = a[ac1 + ar];
{%- for q in 0..4 %}
        let b{{q}} = b[bc{{q}} + br];
{%- endfor %}
{%- for i in 0..8 %}{% for q in 0..4 %}
        acc{{i}}{{q}} = fma(vec4<f32>(a{{ i / 4 }}.{{ crate::kernel::lane(i) }}), b{{q}}, acc{{i}}{{q}});
{%- endfor %}{% endfor %}
    }
{%- call blocks::store_vec4s(8) %}{% endcall %}
}
