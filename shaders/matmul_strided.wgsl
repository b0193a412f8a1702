{%- import "matmul_blocks.wgsl" as blocks -%}
// matmul_strided: a 4×8 register block from scalar loads at any element
// strides (p[6..10]: A's row and k strides, B's k and column strides), so
// transposed operands are read in place and any M, N, K works, edges
// clamped on load and guarded on store: the fallback for sizes the vec4
// kernels cannot take (N = 10 classifier layers). A small block: these
// products are small, and a big unrolled kernel costs cold-start compile
// time.
// p = [M, N, K, first_batch, a_batch_stride, b_batch_stride, a_row, a_k,
//      b_k, b_col, first step, end step, carry on]

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn matmul_strided(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let row0 = gid.y * 4u;
    let col0 = gid.x * 8u;
    if (row0 >= m || col0 >= n) {
        return;
    }
    let batch = gid.z + p[3];
    let ab = batch * p[4];
    let bb = batch * p[5];
    let cb = batch * m * n;
    let sak = p[7];
    let sbk = p[8];
{%- for i in 0..4 %}
    let ar{{i}} = ab + min(row0 + {{i}}u, m - 1u) * p[6];
{%- endfor %}
{%- for j in 0..8 %}
    let bc{{j}} = bb + min(col0 + {{j}}u, n - 1u) * p[9];
{%- endfor %}
{%- call blocks::accumulators(4, 2, 12, false) %}{% endcall %}
    var ak = p[10] * sak;
    var bk = p[10] * sbk;
    let kk_end = p[11];
    for (var kk = p[10]; kk < kk_end; kk++) {
{%- for q in 0..2 %}
        let b{{q}} = vec4<f32>(b[bc{{ 4 * q }} + bk], b[bc{{ 4 * q + 1 }} + bk], b[bc{{ 4 * q + 2 }} + bk], b[bc{{ 4 * q + 3 }} + bk]);
{%- endfor %}
{%- for i in 0..4 %}
        let a{{i}} = a[ar{{i}} + ak];
{%- for q in 0..2 %}
        acc{{i}}{{q}} = fma(vec4<f32>(a{{i}}), b{{q}}, acc{{i}}{{q}});
{%- endfor %}
{%- endfor %}
        ak += sak;
        bk += sbk;
    }
{%- call blocks::store_scalars(4, 2) %}{% endcall %}
}
