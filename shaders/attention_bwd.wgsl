// Fused attention, backward (FlashAttention-2's structure without atomics:
// two kernels that each recompute the scores they need from the forward
// pass's LSE, so the T×S matrices are never stored).
//
// With s_ij = scale·q_i·k_j, P_ij = exp(s_ij − lse_i), g = ∂L/∂out:
//   dP_ij = g_i·v_j,  dS_ij = P_ij·(dP_ij − δ_i),  δ_i = g_i·out_i − ∂L/∂lse_i
//   ∂L/∂q_i = scale·Σ_j dS_ij k_j          (entry attention_dq: query rows)
//   ∂L/∂k_j = scale·Σ_i dS_ij q_i,  ∂L/∂v_j = Σ_i P_ij g_i
//                                          (entry attention_dkv: key rows)
// Each invocation takes `rows` consecutive rows of one head, so that every
// row of the other side it loads serves all of them.
//
// q [heads, T, d], k [heads, S, d], v [heads, S, e], fwd [heads, T, e + 1]
// (the forward's values and LSE), g [heads, T, e], delta [heads, T];
// out: dq [heads, T, d], or dk and dv side by side [heads, S, d + e].
// p = [invocations (heads·⌈T/rows⌉, or heads·⌈S/rows⌉), T, S, scale as f32 bits, −∞ as f32 bits (unused here)]
// Template: d, e, lanes, dc, ec, ty (as in attention_fwd.wgsl: q, k, v and
// g read in chunks of `lanes`), rows, causal, dkv (which entry). One loop
// of at most S (dq) or T (dkv) iterations per invocation.

{%- macro dot(a, b) -%}
{%- if lanes == 4 %}dot({{ a }}, {{ b }}){% else %}{{ a }} * {{ b }}{% endif -%}
{%- endmacro %}
{%- macro lane(l) -%}
{%- if lanes == 4 %}.{{ crate::kernel::lane(l) }}{% endif -%}
{%- endmacro %}

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> q: array<{{ ty }}>;
@group(0) @binding(2) var<storage, read> k: array<{{ ty }}>;
@group(0) @binding(3) var<storage, read> v: array<{{ ty }}>;
@group(0) @binding(4) var<storage, read> fwd: array<f32>;
@group(0) @binding(5) var<storage, read> g: array<{{ ty }}>;
@group(0) @binding(6) var<storage, read> delta: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
{% if !dkv %}
@compute @workgroup_size(64)
fn attention_dq(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = gid.x + gid.y * nwg.x * 64u;
    if (id >= p[0]) {
        return;
    }
    let t_len = p[1];
    let s_len = p[2];
    let scale = bitcast<f32>(p[3]);
    let blocks = (t_len + {{ rows - 1 }}u) / {{ rows }}u;
    let head = id / blocks;
    let i0 = (id % blocks) * {{ rows }}u;
    // Rows past T (the last block's) repeat row T − 1 and are not stored.
{%- for r in 0..rows %}
    let row{{ r }} = head * t_len + min(i0 + {{ r }}u, t_len - 1u);
    let lse{{ r }} = fwd[row{{ r }} * {{ e + 1 }}u + {{ e }}u];
    let delta{{ r }} = delta[row{{ r }}];
{%- for c in 0..dc %}
    let q{{ r }}_{{ c }} = q[row{{ r }} * {{ dc }}u + {{ c }}u] * scale;
    var dq{{ r }}_{{ c }} = {{ ty }}(0.0);
{%- endfor %}
{%- for c in 0..ec %}
    let g{{ r }}_{{ c }} = g[row{{ r }} * {{ ec }}u + {{ c }}u];
{%- endfor %}
{%- endfor %}
{%- if causal %}
    let keys = min(i0 + {{ rows - 1 }}u, t_len - 1u) + s_len - t_len + 1u;
{%- else %}
    let keys = s_len;
{%- endif %}
    for (var j = 0u; j < keys; j++) {
        let kb = (head * s_len + j) * {{ dc }}u;
        let vb = (head * s_len + j) * {{ ec }}u;
{%- for c in 0..dc %}
        let k{{ c }} = k[kb + {{ c }}u];
{%- endfor %}
{%- for c in 0..ec %}
        let v{{ c }} = v[vb + {{ c }}u];
{%- endfor %}
{%- for r in 0..rows %}
        {
            var s = 0.0;
{%- for c in 0..dc %}
            s += {% call dot("q" ~ r ~ "_" ~ c, "k" ~ c) %}{% endcall %};
{%- endfor %}
            var dp = 0.0;
{%- for c in 0..ec %}
            dp += {% call dot("g" ~ r ~ "_" ~ c, "v" ~ c) %}{% endcall %};
{%- endfor %}
            var ds = exp(s - lse{{ r }}) * (dp - delta{{ r }});
{%- if causal %}
            ds = select(ds, 0.0, j + t_len > i0 + {{ r }}u + s_len);
{%- endif %}
{%- for c in 0..dc %}
            dq{{ r }}_{{ c }} += ds * k{{ c }};
{%- endfor %}
        }
{%- endfor %}
    }
{%- for r in 0..rows %}
    if (i0 + {{ r }}u < t_len) {
{%- for c in 0..dc %}
{%- for l in 0..lanes %}
        out[row{{ r }} * {{ d }}u + {{ c * lanes + l }}u] = dq{{ r }}_{{ c }}{% call lane(l) %}{% endcall %} * scale;
{%- endfor %}
{%- endfor %}
    }
{%- endfor %}
}
{% else %}
@compute @workgroup_size(64)
fn attention_dkv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = gid.x + gid.y * nwg.x * 64u;
    if (id >= p[0]) {
        return;
    }
    let t_len = p[1];
    let s_len = p[2];
    let scale = bitcast<f32>(p[3]);
    let blocks = (s_len + {{ rows - 1 }}u) / {{ rows }}u;
    let head = id / blocks;
    let j0 = (id % blocks) * {{ rows }}u;
    // Rows past S (the last block's) repeat row S − 1 and are not stored.
{%- for r in 0..rows %}
    let row{{ r }} = head * s_len + min(j0 + {{ r }}u, s_len - 1u);
{%- for c in 0..dc %}
    let k{{ r }}_{{ c }} = k[row{{ r }} * {{ dc }}u + {{ c }}u];
    var dk{{ r }}_{{ c }} = {{ ty }}(0.0);
{%- endfor %}
{%- for c in 0..ec %}
    let v{{ r }}_{{ c }} = v[row{{ r }} * {{ ec }}u + {{ c }}u];
    var dv{{ r }}_{{ c }} = {{ ty }}(0.0);
{%- endfor %}
{%- endfor %}
    // The queries that see key j: all, or (causal) those with i + S − T ≥ j,
    // from the block's first key on.
{%- if causal %}
    let first = select(0u, j0 + t_len - s_len, j0 + t_len > s_len);
{%- else %}
    let first = 0u;
{%- endif %}
    for (var i = first; i < t_len; i++) {
        let qrow = head * t_len + i;
        let qb = qrow * {{ dc }}u;
        let gb = qrow * {{ ec }}u;
        let lse = fwd[qrow * {{ e + 1 }}u + {{ e }}u];
        let delta_i = delta[qrow];
{%- for c in 0..dc %}
        let q{{ c }} = q[qb + {{ c }}u];
{%- endfor %}
{%- for c in 0..ec %}
        let g{{ c }} = g[gb + {{ c }}u];
{%- endfor %}
{%- for r in 0..rows %}
        {
            var s = 0.0;
{%- for c in 0..dc %}
            s += {% call dot("q" ~ c, "k" ~ r ~ "_" ~ c) %}{% endcall %};
{%- endfor %}
            var pij = exp(s * scale - lse);
{%- if causal %}
            pij = select(pij, 0.0, j0 + {{ r }}u + t_len > i + s_len);
{%- endif %}
            var dp = 0.0;
{%- for c in 0..ec %}
            dp += {% call dot("g" ~ c, "v" ~ r ~ "_" ~ c) %}{% endcall %};
            dv{{ r }}_{{ c }} += pij * g{{ c }};
{%- endfor %}
            let ds = pij * (dp - delta_i) * scale;
{%- for c in 0..dc %}
            dk{{ r }}_{{ c }} += ds * q{{ c }};
{%- endfor %}
        }
{%- endfor %}
    }
{%- for r in 0..rows %}
    if (j0 + {{ r }}u < s_len) {
        let ob = row{{ r }} * {{ d + e }}u;
{%- for c in 0..dc %}
{%- for l in 0..lanes %}
        out[ob + {{ c * lanes + l }}u] = dk{{ r }}_{{ c }}{% call lane(l) %}{% endcall %};
{%- endfor %}
{%- endfor %}
{%- for c in 0..ec %}
{%- for l in 0..lanes %}
        out[ob + {{ d + c * lanes + l }}u] = dv{{ r }}_{{ c }}{% call lane(l) %}{% endcall %};
{%- endfor %}
{%- endfor %}
    }
{%- endfor %}
}
{% endif %}
