{#- The `value` function of a fused kernel, the hole of the elementwise and
    reduce templates: the compiler in src/exec/codegen.rs writes its loads
    (broadcast-aware indexing of each input buffer) and its body (one `let`
    per fused op) from the graph. In vec4 code the scalar body is
    `value_s`, applied to each component of the loaded vec4s. -#}
{%- for element in inputs %}
@group(0) @binding({{ loop.index0 + 2 }}) var<storage, read> src{{ loop.index0 }}: array<{{ element }}>;
{%- endfor %}
{% if vec4 %}
{%- if value_s %}
fn value_s({{ params }}) -> f32 {
{{ body }}
    return {{ result }};
}
{%- endif %}

fn value4(i: u32) -> vec4<f32> {
{{ loads }}
    return {{ vec4_result }};
}
{%- else %}
fn value(i: u32) -> f32 {
{{ loads }}
{{ body }}
    return {{ result }};
}
{%- endif %}
