{%- import "matmul_blocks.wgsl" as blocks -%}
// matmul_nt: A·Bᵀ with B stored [n, k], the ∂L/∂A = G·Bᵀ of the backward
// pass, read in place: vec4 loads along K of 8 rows of A and 16 rows of
// stored B, 512 multiply-adds per step into an 8×16 block (as many loads
// per multiply-add as matmul_vec4), each output's four in K's order (not
// `dot`, whose order is the driver's). For K a multiple of 4; any N (the
// block's columns are stored one by one, guarded).
// p = [M, N, K, batch, a_batch_stride, b_batch_stride, first_batch, first
//      step, end step, carry on] (steps of K/4)

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn matmul_nt(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k4 = p[2] / 4u;
    let row0 = gid.y * 8u;
    let col0 = gid.x * 16u;
    if (row0 >= m || col0 >= n) {
        return;
    }
    let batch = gid.z + p[6];
    let ab = batch * (p[4] / 4u);
    let bb = batch * (p[5] / 4u);
    let cb = batch * m * n;
{%- for i in 0..8 %}
    let ar{{i}} = ab + min(row0 + {{i}}u, m - 1u) * k4;
{%- endfor %}
{%- for j in 0..16 %}
    let bc{{j}} = bb + min(col0 + {{j}}u, n - 1u) * k4;
{%- endfor %}
{%- call blocks::accumulators(8, 4, 9, false) %}{% endcall %}
    let kk_end = p[8];
    for (var kk = p[7]; kk < kk_end; kk++) {
{%- for j in 0..16 %}
        let b{{j}} = b[bc{{j}} + kk];
{%- endfor %}
{%- for i in 0..8 %}
        let a{{i}} = a[ar{{i}} + kk];
{%- for q in 0..4 %}
        acc{{i}}{{q}} = fma(a{{i}}.wwww, vec4<f32>(b{{ 4 * q }}.w, b{{ 4 * q + 1 }}.w, b{{ 4 * q + 2 }}.w, b{{ 4 * q + 3 }}.w), fma(a{{i}}.zzzz, vec4<f32>(b{{ 4 * q }}.z, b{{ 4 * q + 1 }}.z, b{{ 4 * q + 2 }}.z, b{{ 4 * q + 3 }}.z), fma(a{{i}}.yyyy, vec4<f32>(b{{ 4 * q }}.y, b{{ 4 * q + 1 }}.y, b{{ 4 * q + 2 }}.y, b{{ 4 * q + 3 }}.y), fma(a{{i}}.xxxx, vec4<f32>(b{{ 4 * q }}.x, b{{ 4 * q + 1 }}.x, b{{ 4 * q + 2 }}.x, b{{ 4 * q + 3 }}.x), acc{{i}}{{q}}))));
{%- endfor %}
{%- endfor %}
    }
{%- call blocks::store_scalars(8, 4) %}{% endcall %}
}
