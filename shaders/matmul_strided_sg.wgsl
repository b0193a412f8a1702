{%- import "matmul_blocks.wgsl" as blocks -%}
// matmul_strided_sg for subgroups of `lanes` lanes: matmul_strided's
// parameters (any element strides: transposed operands in place, any M, N,
// K) with matmul_sg's arrangement: one subgroup per workgroup, lanes along
// rows, `rows` rows × 16 columns per lane, and B's 16 values per step
// along K loaded 16/lanes per lane and broadcast. With 8 rows a lane loads
// per step 8 values of A and 2 of B (8 lanes) for 128 multiply-adds, where
// matmul_strided loads 4 and 8 for 32. With 2 rows it is a quarter of the
// kernel for a CPU rasterizer to compile: the cold start's one kernel.
// p = matmul_strided's.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size({{lanes}}, 1, 1)
fn {{entry}}(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32) {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let batch = wg.z + p[3];
    let ab = batch * p[4];
    let bb = batch * p[5];
    let cb = batch * m * n;
    let sak = p[7];
    let sbk = p[8];
    let row0 = wg.y * {{ rows * lanes }}u + sl * {{rows}}u;
    let col0 = wg.x * 16u;
{%- for i in 0..rows %}
    let ar{{i}} = ab + min(row0 + {{i}}u, m - 1u) * p[6];
{%- endfor %}
{%- for j in 0..loads %}
    let bo{{j}} = bb + min(col0 + min({{ j * lanes }}u + sl, 15u), n - 1u) * p[9];
{%- endfor %}
{%- call blocks::accumulators(rows, 4, 12, false) %}{% endcall %}
    var ak = p[10] * sak;
    var bk = p[10] * sbk;
    let kk_end = p[11];
    for (var kk = p[10]; kk < kk_end; kk++) {
{%- for j in 0..loads %}
        let l{{j}} = b[bo{{j}} + bk];
{%- endfor %}
{%- for q in 0..4 %}
        let b{{q}} = vec4<f32>(
{%- for t in 0..4 -%}
            subgroupBroadcast(l{{ (4 * q + t) / lanes }}, {{ (4 * q + t) % lanes }}u){% if t < 3 %}, {% endif %}
{%- endfor -%}
        );
{%- endfor %}
{%- for i in 0..rows %}
        let a{{i}} = a[ar{{i}} + ak];
{%- for q in 0..4 %}
        acc{{i}}{{q}} = fma(vec4<f32>(a{{i}}), b{{q}}, acc{{i}}{{q}});
{%- endfor %}
{%- endfor %}
        ak += sak;
        bk += sbk;
    }
{%- call blocks::store_scalars(rows, 4) %}{% endcall %}
}
