{#- Pieces the generated matmul kernels share (askama macros, see
    src/ops/matmul/kernels.rs). Every variant accumulates each output the
    same way: from 0 (or from C when a long K carries on), one fma per step
    along K in K's order, so the variant autotune keeps never changes a
    result's bits. -#}

{#- `var accIQ = vec4<f32>(0.0);` for `rows` × `groups` vec4 accumulators
    (rows of C × groups of 4 columns) or, when parameter word `flag` is 1,
    the values of C the previous dispatch stored there: a product whose K is
    split over dispatches carries each sum on where the last dispatch left
    it. Reads past the edge are clamped (their sums are never stored). C is
    scalars at row stride `n`, or vec4s at row stride `n4` (`vec4s`). -#}
{% macro accumulators(rows, groups, flag, vec4s) -%}
{% for i in 0..rows %}{% for q in 0..groups %}
    var acc{{i}}{{q}} = vec4<f32>(0.0);
{%- endfor %}{% endfor %}
    if (p[{{flag}}] == 1u) {
{%- for i in 0..rows %}{% for q in 0..groups %}
{%- if vec4s %}
        acc{{i}}{{q}} = c[cb + min(row0 + {{i}}u, m - 1u) * n4 + min(col0 + {{q}}u, n4 - 1u)];
{%- else %}
        acc{{i}}{{q}} = vec4<f32>(
{%- for t in 0..4 -%}
            c[cb + min(row0 + {{i}}u, m - 1u) * n + min(col0 + {{ 4 * q + t }}u, n - 1u)]{% if t < 3 %}, {% endif %}
{%- endfor -%}
        );
{%- endif %}
{%- endfor %}{% endfor %}
    }
{%- endmacro %}

{#- `accIG` advanced by four steps along K, one fma each in order
    (`aI.x·b0G`, then `aI.y·b1G`, ...). -#}
{% macro fma_steps(i, g) -%}
        acc{{i}}{{g}} = fma(a{{i}}.wwww, b3{{g}}, fma(a{{i}}.zzzz, b2{{g}}, fma(a{{i}}.yyyy, b1{{g}}, fma(a{{i}}.xxxx, b0{{g}}, acc{{i}}{{g}}))));
{%- endmacro %}

{#- The block stored into a scalar C (row stride `n`, batch offset `cb`)
    one element at a time, rows and columns past the edge skipped. -#}
{% macro store_scalars(rows, groups) -%}
{% for i in 0..rows %}
    if (row0 + {{i}}u < m) {
        let o = cb + (row0 + {{i}}u) * n + col0;
{%- for j in 0..4 * groups %}
        if (col0 + {{j}}u < n) { c[o + {{j}}u] = acc{{i}}{{ j / 4 }}.{{ crate::kernel::lane(j) }}; }
{%- endfor %}
    }
{%- endfor %}
{%- endmacro %}

{#- The block stored into a vec4 C (row stride `n4`), 4 groups per row. -#}
{% macro store_vec4s(rows) -%}
{% for i in 0..rows %}
    if (row0 + {{i}}u < m) {
        let o = cb + (row0 + {{i}}u) * n4 + col0;
        c[o] = acc{{i}}0;
{%- for g in 1..4 %}
        if (col0 + {{g}}u < n4) { c[o + {{g}}u] = acc{{i}}{{g}}; }
{%- endfor %}
    }
{%- endfor %}
{%- endmacro %}
