{%- import "matmul_blocks.wgsl" as blocks -%}
// matmul_sg for subgroups of `lanes` lanes (a power of two, 8 to 64),
// op(A)·op(B) with op a transpose where `ta`/`tb` say so, read in place:
// matmul_vec4's 8×16 block per invocation and its parameters, but one
// subgroup per workgroup with its lanes along rows (lane l computes rows
// 8l..8l+8 of the workgroup's 8·lanes) and all lanes on the same 16
// columns. Per step of 4 along K the lanes need the same 16 vec4 of B:
// each loads 16/lanes of them and subgroupBroadcast hands every lane all
// 16, so a lane loads 8 vec4 of A and 2 of B (on 8 lanes) instead of 8
// and 16. A transposed A is read as two vec4 of 4 rows per step along K,
// a transposed B as a vec4 along K per column, regrouped after the
// broadcast: as many loads as the plain product. For K and N multiples of
// 4, and M too when A is transposed. No early return: a broadcast needs
// every lane; edges are clamped on load and skipped on store.
// p = matmul_vec4's.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

@compute @workgroup_size({{lanes}}, 1, 1)
fn matmul_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32) {
    let m = p[0];
    let n4 = p[1] / 4u;
    let k4 = p[2] / 4u;
    let batch = wg.z + p[6];
    let ab = batch * (p[4] / 4u);
    let bb = batch * (p[5] / 4u);
    let cb = batch * m * n4;
    let row0 = wg.y * {{ 8 * lanes }}u + sl * 8u;
    let col0 = wg.x * 4u;
{%- if ta %}
    // A stored [k, m]: rows row0..row0+8 of op(A) at one k are two vec4 of
    // that k's row of A (clamped at the last vec4).
    let m4 = m / 4u;
{%- for h in 0..2 %}
    let ac{{h}} = ab + min(row0 / 4u + {{h}}u, m4 - 1u);
{%- endfor %}
{%- else %}
{%- for i in 0..8 %}
    let ar{{i}} = ab + min(row0 + {{i}}u, m - 1u) * k4;
{%- endfor %}
{%- endif %}
    // Lane sl loads the vec4 number j·lanes + sl of the 16 B needs per step
{%- if tb -%}
    : number t is column 4·col0 + t of op(B), 4 values along K.
{%- else -%}
    : number 4q + g is row q (of the step) of B, column group g.
{%- endif %}
{%- for j in 0..loads %}
    let t{{j}} = min({{ j * lanes }}u + sl, 15u);
{%- if tb %}
    let bo{{j}} = bb + min(col0 * 4u + t{{j}}, n4 * 4u - 1u) * k4;
{%- else %}
    let bo{{j}} = bb + (t{{j}} / 4u) * n4 + min(col0 + t{{j}} % 4u, n4 - 1u);
{%- endif %}
{%- endfor %}
{%- call blocks::accumulators(8, 4, 9, true) %}{% endcall %}
    let kk_end = p[8];
    for (var kk = p[7]; kk < kk_end; kk++) {
{%- for j in 0..loads %}
{%- if tb %}
        let l{{j}} = b[bo{{j}} + kk];
{%- else %}
        let l{{j}} = b[bo{{j}} + kk * 4u * n4];
{%- endif %}
{%- endfor %}
        // bQG: row Q of the step's 4 rows of op(B), columns 4G..4G+4.
{%- if tb %}
{%- for t in 0..16 %}
        let col{{t}} = subgroupBroadcast(l{{ t / lanes }}, {{ t % lanes }}u);
{%- endfor %}
{%- for q in 0..4 %}{% for g in 0..4 %}
        let b{{q}}{{g}} = vec4<f32>(col{{ 4 * g }}.{{ crate::kernel::lane(q) }}, col{{ 4 * g + 1 }}.{{ crate::kernel::lane(q) }}, col{{ 4 * g + 2 }}.{{ crate::kernel::lane(q) }}, col{{ 4 * g + 3 }}.{{ crate::kernel::lane(q) }});
{%- endfor %}{% endfor %}
{%- else %}
{%- for q in 0..4 %}{% for g in 0..4 %}
        let b{{q}}{{g}} = subgroupBroadcast(l{{ (4 * q + g) / lanes }}, {{ (4 * q + g) % lanes }}u);
{%- endfor %}{% endfor %}
{%- endif %}
{%- if ta %}
{%- for q in 0..4 %}{% for h in 0..2 %}
        let at{{q}}{{h}} = a[ac{{h}} + (kk * 4u + {{q}}u) * m4];
{%- endfor %}{% endfor %}
{%- endif %}
{%- for i in 0..8 %}
{%- if ta %}
        let a{{i}} = vec4<f32>(at0{{ i / 4 }}.{{ crate::kernel::lane(i) }}, at1{{ i / 4 }}.{{ crate::kernel::lane(i) }}, at2{{ i / 4 }}.{{ crate::kernel::lane(i) }}, at3{{ i / 4 }}.{{ crate::kernel::lane(i) }});
{%- else %}
        let a{{i}} = a[ar{{i}} + kk];
{%- endif %}
{%- for g in 0..4 %}
{% call blocks::fma_steps(i, g) %}{% endcall %}
{%- endfor %}
{%- endfor %}
    }
{%- call blocks::store_vec4s(8) %}{% endcall %}
}
