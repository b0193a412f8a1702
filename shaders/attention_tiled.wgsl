// Fused attention for real GPUs (the kernel family `Tiled`): the kernels of
// attention_fwd.wgsl and attention_bwd.wgsl with the rows of the other side
// staged in workgroup memory. A workgroup of 64 invocations takes 64
// consecutive rows of one head (one each); per tile of `tile` rows of the
// other side it loads them once for all 64 (each element read from global
// memory once per workgroup, not once per invocation), then every
// invocation runs over the tile from workgroup memory. On CPU rasterizers
// the barriers make this slower than the row-blocked kernels; the device
// picks per adapter.
//
// kind 0, attention_fwd_tiled: out [heads, T, e + 1] (values, then LSE)
//   from q [heads, T, d], k [heads, S, d], v [heads, S, e];
// kind 1, attention_dq_tiled: dq [heads, T, d];
// kind 2, attention_dkv_tiled: dk and dv side by side [heads, S, d + e];
//   both from q, k, v, fwd (the forward's output), g [heads, T, e] and
//   delta [heads, T] (see attention_bwd.wgsl for the formulas).
// p = [workgroups (heads·⌈T/64⌉, or heads·⌈S/64⌉ for kind 2), T, S,
//      scale as f32 bits, −∞ as f32 bits]
// Template: d, e, tile, causal, kind.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
{%- if kind == 0 %}
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
{%- else %}
@group(0) @binding(4) var<storage, read> fwd: array<f32>;
@group(0) @binding(5) var<storage, read> g: array<f32>;
@group(0) @binding(6) var<storage, read> delta: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
{%- endif %}
{% if kind != 2 %}
// A tile of keys and values.
var<workgroup> kt: array<f32, {{ tile * d }}>;
var<workgroup> vt: array<f32, {{ tile * e }}>;

@compute @workgroup_size(64)
fn {% if kind == 0 %}attention_fwd_tiled{% else %}attention_dq_tiled{% endif %}(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.x + wid.y * nwg.x;
    // Uniform across the workgroup, so the barriers below stay uniform.
    if (group >= p[0]) {
        return;
    }
    let t_len = p[1];
    let s_len = p[2];
    let scale = bitcast<f32>(p[3]);
    let neg_inf = bitcast<f32>(p[4]);
    let blocks = (t_len + 63u) / 64u;
    let head = group / blocks;
    let i0 = (group % blocks) * 64u;
    let i = i0 + lid;
    // Rows past T (the last block's) repeat row T − 1 and are not stored.
    let row = head * t_len + min(i, t_len - 1u);
{%- for c in 0..d %}
    let q{{ c }} = q[row * {{ d }}u + {{ c }}u] * scale;
{%- endfor %}
{%- if kind == 0 %}
    var m = neg_inf;
    var l = 0.0;
{%- for c in 0..e %}
    var a{{ c }} = 0.0;
{%- endfor %}
{%- else %}
    let lse = fwd[row * {{ e + 1 }}u + {{ e }}u];
    let d_row = delta[row];
{%- for c in 0..e %}
    let g{{ c }} = g[row * {{ e }}u + {{ c }}u];
{%- endfor %}
{%- for c in 0..d %}
    var dq{{ c }} = 0.0;
{%- endfor %}
{%- endif %}
    // The keys the block's last row sees (key 0 is seen by every row).
{%- if causal %}
    let keys = min(i0 + 63u, t_len - 1u) + s_len - t_len + 1u;
{%- else %}
    let keys = s_len;
{%- endif %}
    for (var j0 = 0u; j0 < keys; j0 += {{ tile }}u) {
        for (var x = lid; x < {{ tile * d }}u; x += 64u) {
            let j = min(j0 + x / {{ d }}u, s_len - 1u);
            kt[x] = k[(head * s_len + j) * {{ d }}u + x % {{ d }}u];
        }
        for (var x = lid; x < {{ tile * e }}u; x += 64u) {
            let j = min(j0 + x / {{ e }}u, s_len - 1u);
            vt[x] = v[(head * s_len + j) * {{ e }}u + x % {{ e }}u];
        }
        workgroupBarrier();
        let n = min({{ tile }}u, keys - j0);
        for (var jj = 0u; jj < n; jj++) {
            var s = 0.0;
{%- for c in 0..d %}
            s = fma(q{{ c }}, kt[jj * {{ d }}u + {{ c }}u], s);
{%- endfor %}
            let masked = {% if causal %}j0 + jj + t_len > i + s_len{% else %}false{% endif %};
{%- if kind == 0 %}
            s = select(s, neg_inf, masked);
            // Rescale only when the max changes (few keys do), so most
            // pairs cost one exp.
            if (s > m) {
                let rescale = exp(m - s);
                l = l * rescale;
{%- for c in 0..e %}
                a{{ c }} = a{{ c }} * rescale;
{%- endfor %}
                m = s;
            }
            let w = exp(s - m);
            l = l + w;
{%- for c in 0..e %}
            a{{ c }} = fma(w, vt[jj * {{ e }}u + {{ c }}u], a{{ c }});
{%- endfor %}
{%- else %}
            var dp = 0.0;
{%- for c in 0..e %}
            dp = fma(g{{ c }}, vt[jj * {{ e }}u + {{ c }}u], dp);
{%- endfor %}
            let ds = select(exp(s - lse) * (dp - d_row), 0.0, masked);
{%- for c in 0..d %}
            dq{{ c }} = fma(ds, kt[jj * {{ d }}u + {{ c }}u], dq{{ c }});
{%- endfor %}
{%- endif %}
        }
        workgroupBarrier();
    }
    if (i < t_len) {
{%- if kind == 0 %}
        let ob = row * {{ e + 1 }}u;
        let inv = 1.0 / l;
{%- for c in 0..e %}
        out[ob + {{ c }}u] = a{{ c }} * inv;
{%- endfor %}
        out[ob + {{ e }}u] = m + log(l);
{%- else %}
{%- for c in 0..d %}
        out[row * {{ d }}u + {{ c }}u] = dq{{ c }} * scale;
{%- endfor %}
{%- endif %}
    }
}
{% else %}
// A tile of queries, their cotangents, LSEs and δs.
var<workgroup> qt: array<f32, {{ tile * d }}>;
var<workgroup> gt: array<f32, {{ tile * e }}>;
var<workgroup> lset: array<f32, {{ tile }}>;
var<workgroup> dt: array<f32, {{ tile }}>;

@compute @workgroup_size(64)
fn attention_dkv_tiled(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p[0]) {
        return;
    }
    let t_len = p[1];
    let s_len = p[2];
    let scale = bitcast<f32>(p[3]);
    let blocks = (s_len + 63u) / 64u;
    let head = group / blocks;
    let j0 = (group % blocks) * 64u;
    let j = j0 + lid;
    // Rows past S (the last block's) repeat row S − 1 and are not stored.
    let row = head * s_len + min(j, s_len - 1u);
{%- for c in 0..d %}
    let k{{ c }} = k[row * {{ d }}u + {{ c }}u];
    var dk{{ c }} = 0.0;
{%- endfor %}
{%- for c in 0..e %}
    let v{{ c }} = v[row * {{ e }}u + {{ c }}u];
    var dv{{ c }} = 0.0;
{%- endfor %}
    // The queries the block's first key is seen by, and every later one.
{%- if causal %}
    let first = select(0u, j0 + t_len - s_len, j0 + t_len > s_len);
{%- else %}
    let first = 0u;
{%- endif %}
    for (var i0 = first; i0 < t_len; i0 += {{ tile }}u) {
        for (var x = lid; x < {{ tile * d }}u; x += 64u) {
            let i = min(i0 + x / {{ d }}u, t_len - 1u);
            qt[x] = q[(head * t_len + i) * {{ d }}u + x % {{ d }}u] * scale;
        }
        for (var x = lid; x < {{ tile * e }}u; x += 64u) {
            let i = min(i0 + x / {{ e }}u, t_len - 1u);
            gt[x] = g[(head * t_len + i) * {{ e }}u + x % {{ e }}u];
        }
        if (lid < {{ tile }}u) {
            let i = head * t_len + min(i0 + lid, t_len - 1u);
            lset[lid] = fwd[i * {{ e + 1 }}u + {{ e }}u];
            dt[lid] = delta[i];
        }
        workgroupBarrier();
        let n = min({{ tile }}u, t_len - i0);
        for (var ii = 0u; ii < n; ii++) {
            var s = 0.0;
{%- for c in 0..d %}
            s = fma(qt[ii * {{ d }}u + {{ c }}u], k{{ c }}, s);
{%- endfor %}
            let masked = {% if causal %}j + t_len > i0 + ii + s_len{% else %}false{% endif %};
            let pij = select(exp(s - lset[ii]), 0.0, masked);
            var dp = 0.0;
{%- for c in 0..e %}
            dp = fma(gt[ii * {{ e }}u + {{ c }}u], v{{ c }}, dp);
            dv{{ c }} = fma(pij, gt[ii * {{ e }}u + {{ c }}u], dv{{ c }});
{%- endfor %}
            let ds = pij * (dp - dt[ii]);
{%- for c in 0..d %}
            dk{{ c }} = fma(ds, qt[ii * {{ d }}u + {{ c }}u], dk{{ c }});
{%- endfor %}
        }
        workgroupBarrier();
    }
    if (j < s_len) {
        let ob = row * {{ d + e }}u;
{%- for c in 0..d %}
        out[ob + {{ c }}u] = dk{{ c }};
{%- endfor %}
{%- for c in 0..e %}
        out[ob + {{ d + c }}u] = dv{{ c }};
{%- endfor %}
    }
}
{% endif %}
