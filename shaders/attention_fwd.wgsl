// Fused attention, forward (FlashAttention's online softmax): out[row] =
// softmax(q·kᵀ·scale)·v over the keys the row sees, and beside it the
// row's log-sum-exp, so that the T×S scores are never stored. The backward
// kernels recompute them from the LSE.
//
// Each invocation takes `rows` consecutive query rows of one head, so that
// every key and value it loads serves all of them (register blocking:
// loads, not arithmetic, bound this kernel on CPU rasterizers).
//
// q [heads, T, d], k [heads, S, d], v [heads, S, e] (contiguous); out
// [heads, T, e + 1]: the row's values, then its LSE.
// p = [invocations = heads·⌈T/rows⌉, T, S, scale as f32 bits, −∞ as f32 bits]
// Template: d, e (the widths, unrolled: a loop over them would count
// against lavapipe's loop budget), lanes (4 where d and e are multiples of
// 4: q, k and v are then read as vec4, one load for four values; else 1),
// dc = d / lanes and ec = e / lanes (the chunks per row), ty (f32 or
// vec4<f32>), rows, causal (query i sees keys j ≤ i + S − T). One loop of
// at most S iterations per invocation.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> q: array<{{ ty }}>;
@group(0) @binding(2) var<storage, read> k: array<{{ ty }}>;
@group(0) @binding(3) var<storage, read> v: array<{{ ty }}>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn attention_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
    // −∞ from the parameters: a constant −∞ is an error in browsers' WGSL.
    let neg_inf = bitcast<f32>(p[4]);
    // Rows past T (the last block's) repeat row T − 1 and are not stored.
{%- for r in 0..rows %}
    let row{{ r }} = head * t_len + min(i0 + {{ r }}u, t_len - 1u);
{%- for c in 0..dc %}
    let q{{ r }}_{{ c }} = q[row{{ r }} * {{ dc }}u + {{ c }}u] * scale;
{%- endfor %}
    // Running max m, running sum l of exp(s − m), and the running
    // Σ exp(s − m)·v: each new key rescales them by exp(m_old − m_new).
    var m{{ r }} = neg_inf;
    var l{{ r }} = 0.0;
{%- for c in 0..ec %}
    var a{{ r }}_{{ c }} = {{ ty }}(0.0);
{%- endfor %}
{%- endfor %}
{%- if causal %}
    // Key 0 is seen by every row (S ≥ T), so m is finite from the first key on.
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
{%- if lanes == 4 %}
            s += dot(q{{ r }}_{{ c }}, k{{ c }});
{%- else %}
            s = fma(q{{ r }}_{{ c }}, k{{ c }}, s);
{%- endif %}
{%- endfor %}
{%- if causal %}
            s = select(s, neg_inf, j + t_len > i0 + {{ r }}u + s_len);
{%- endif %}
            // The max changes for few keys (about ln S of them on
            // random scores): rescale only then, one exp per pair else.
            if (s > m{{ r }}) {
                let rescale = exp(m{{ r }} - s);
                l{{ r }} = l{{ r }} * rescale;
{%- for c in 0..ec %}
                a{{ r }}_{{ c }} = a{{ r }}_{{ c }} * rescale;
{%- endfor %}
                m{{ r }} = s;
            }
            let w = exp(s - m{{ r }});
            l{{ r }} = l{{ r }} + w;
{%- for c in 0..ec %}
            a{{ r }}_{{ c }} = fma({{ ty }}(w), v{{ c }}, a{{ r }}_{{ c }});
{%- endfor %}
        }
{%- endfor %}
    }
{%- for r in 0..rows %}
    if (i0 + {{ r }}u < t_len) {
        let ob = row{{ r }} * {{ e + 1 }}u;
        let inv = 1.0 / l{{ r }};
{%- for c in 0..ec %}
{%- for l in 0..lanes %}
        out[ob + {{ c * lanes + l }}u] = a{{ r }}_{{ c }}{% if lanes == 4 %}.{{ crate::kernel::lane(l) }}{% endif %} * inv;
{%- endfor %}
{%- endfor %}
        out[ob + {{ e }}u] = m{{ r }} + log(l{{ r }});
    }
{%- endfor %}
}
