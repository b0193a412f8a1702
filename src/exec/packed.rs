//! Family kernels reading 16-bit inputs. An op family's kernels are
//! written for f32 inputs (`var<storage, read> a: array<f32>`, or
//! `array<vec4<f32>>`); where an input holds 16-bit values, packed two per
//! word, the executor rewrites the kernel's source so that the binding is
//! an `array<u32>` and each read `a[j]` converts element j (or elements
//! 4j .. 4j + 3) in registers. So no family has dtype code, and a 16-bit
//! input needs no f32 copy in memory: that copy, as large as the input
//! twice over, was what kept 16-bit activations from halving a step's
//! memory.
//!
//! An op family's result rounded to 16 bits is stored the same way: the
//! output binding becomes an `array<atomic<u32>>` and each store
//! `c[j] = v;` rounds v and sets element j's half of its word (two atomic
//! operations, because the invocation storing the other half of the word
//! may run at the same time; a `vec4` store owns its two words). So the
//! f32 result is never stored: it was the largest buffer at the peak of a
//! 16-bit step (a matmul's in the forward pass, the pooling scatter's in
//! the backward pass).
//!
//! The rewrite is textual on purpose: reads of a read-only storage array
//! are the only uses WGSL allows of it besides `arrayLength` (which no
//! kernel calls), and naga validates the result like every kernel (the
//! shader tests rewrite every specialization of every family for every
//! input, see `shader_check.rs`).

use crate::dtype::DType;

/// `source` with the input arrays at the given bindings (binding number,
/// dtype of its values) read as packed 16-bit values. `None` if a binding
/// is not declared as a read-only `array<f32>` or `array<vec4<f32>>`.
///
/// With `native_f16` (the device has WebGPU's `shader-f16`), an f16 input
/// is bound as WGSL's `array<f16>` and each value converted by the
/// hardware, instead of decoded from its word with integer arithmetic.
/// Both are exact (every f16 is an f32), so the values are the same bit
/// for bit (tested). Only reads: rounding to 16 bits stays integer
/// arithmetic everywhere, because WGSL leaves the rounding of a value
/// converted to `f16` to the implementation and makes one beyond f16's
/// range indeterminate, while webgrad's rule is IEEE's round to nearest
/// even with overflow to ±∞ on every adapter. (WGSL's `bitcast` between
/// `u32` and `vec2<f16>`, which would let every kernel decode natively,
/// is not implemented in naga, wgpu's shader compiler, yet.)
pub(crate) fn read_16_bit(
    source: &str,
    packed: &[(usize, DType)],
    native_f16: bool,
) -> Option<String> {
    let mut code = source.to_string();
    let mut typed = false;
    for &(binding, dtype) in packed {
        let native = native_f16 && dtype == DType::F16;
        code = rewrite_binding(&code, binding, dtype, native)?;
        typed |= native;
    }
    super::codegen::append_helpers(&mut code, DType::F32);
    if typed {
        code.insert_str(0, "enable f16;\n");
    }
    Some(code)
}

/// `source` with the output array at `binding` stored as packed 16-bit
/// values of `dtype`, rounded as they are stored (see the module's
/// documentation). `None` if the binding is not a read-write
/// `array<f32>` or `array<vec4<f32>>`, or a store is not a plain
/// `name[index] = value;` (a compound assignment, a component store).
/// A read of the output (a kernel carrying a sum over dispatches) reads
/// the rounded value: the caller rewrites only kernels that carry nothing.
pub(crate) fn write_16_bit(source: &str, binding: usize, dtype: DType) -> Option<String> {
    let marker = format!("@binding({binding}) var<storage, read_write> ");
    let start = source.find(&marker)? + marker.len();
    let end = start + source[start..].find(';')?;
    let (name, element) = source[start..end].split_once(':')?;
    let (name, element) = (name.trim(), element.trim());
    let access = match element {
        "array<f32>" => format!(
            "\nfn wg_write_{name}(j: u32, v: f32) {{\n    \
             let shift = (j & 1u) * 16u;\n    \
             atomicAnd(&{name}_16[j / 2u], ~(0xffffu << shift));\n    \
             atomicOr(&{name}_16[j / 2u], wg_to_{dtype}(v) << shift);\n}}\n\
             \nfn wg_read_{name}(j: u32) -> f32 {{\n    \
             return wg_from_{dtype}(wg_half(atomicLoad(&{name}_16[j / 2u]), j));\n}}\n"
        ),
        "array<vec4<f32>>" => format!(
            "\nfn wg_write_{name}(j: u32, v: vec4<f32>) {{\n    \
             atomicStore(&{name}_16[2u * j], wg_to_{dtype}(v.x) | (wg_to_{dtype}(v.y) << 16u));\n    \
             atomicStore(&{name}_16[2u * j + 1u], wg_to_{dtype}(v.z) | (wg_to_{dtype}(v.w) << 16u));\n}}\n\
             \nfn wg_read_{name}(j: u32) -> vec4<f32> {{\n    \
             let lo = atomicLoad(&{name}_16[2u * j]);\n    \
             let hi = atomicLoad(&{name}_16[2u * j + 1u]);\n    \
             return {};\n}}\n",
            decode_4(dtype)
        ),
        _ => return None,
    };
    let mut code = String::with_capacity(source.len() + 512);
    code.push_str(&source[..start]);
    code.push_str(&format!("{name}_16: array<atomic<u32>>"));
    code.push_str(&replace_accesses(&source[end..], name)?);
    code.push_str(&access);
    super::codegen::append_helpers(&mut code, DType::F32);
    Some(code)
}

/// `code` with every store `name[index] = value;` replaced by
/// `wg_write_name(u32(index), value);` and every other `name[index]` by
/// `wg_read_name(u32(index))`; `None` if a bracket is unmatched or a store
/// is not plain.
fn replace_accesses(code: &str, name: &str) -> Option<String> {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some((at, close)) = next_access(rest, name) {
        out.push_str(&rest[..at]);
        let index = replace_accesses(&rest[at + name.len() + 1..close], name)?;
        let after = &rest[close + 1..];
        let trimmed = after.trim_start();
        if trimmed.starts_with('=') && !trimmed.starts_with("==") {
            let value_start = after.len() - trimmed.len() + 1;
            let value_end = value_start + after[value_start..].find(';')?;
            let value = replace_accesses(&after[value_start..value_end], name)?;
            out.push_str(&format!("wg_write_{name}(u32({index}), {})", value.trim()));
            rest = &after[value_end..];
        } else {
            // A compound assignment or a store to a component is not rewritten.
            let compound = ["+=", "-=", "*=", "/="]
                .iter()
                .any(|op| trimmed.starts_with(op));
            if compound || component_store(trimmed) {
                return None;
            }
            out.push_str(&format!("wg_read_{name}(u32({index}))"));
            rest = after;
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Whether `code` starts with a component access that is stored to
/// (`.x = v;`, `.x += v;`).
fn component_store(code: &str) -> bool {
    let Some(member) = code.strip_prefix('.') else {
        return false;
    };
    let rest = member
        .trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
        .trim_start();
    rest.starts_with('=') && !rest.starts_with("==")
        || ["+=", "-=", "*=", "/="]
            .iter()
            .any(|op| rest.starts_with(op))
}

/// The next `name[` (name a whole identifier) in `code`: its offset and
/// that of its matching `]`.
fn next_access(code: &str, name: &str) -> Option<(usize, usize)> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let pattern = format!("{name}[");
    let mut from = 0;
    while let Some(found) = code[from..].find(&pattern) {
        let at = from + found;
        if code[..at].chars().next_back().is_some_and(is_ident) {
            from = at + pattern.len();
            continue;
        }
        let open = at + pattern.len();
        let mut depth = 1usize;
        let close = code[open..].char_indices().find_map(|(i, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(open + i)
        })?;
        return Some((at, close));
    }
    None
}

/// One binding's declaration and reads rewritten (as WGSL's `f16` values
/// where `native`).
fn rewrite_binding(code: &str, binding: usize, dtype: DType, native: bool) -> Option<String> {
    let marker = format!("@binding({binding}) var<storage, read> ");
    let start = code.find(&marker)? + marker.len();
    let end = start + code[start..].find(';')?;
    let (name, element) = code[start..end].split_once(':')?;
    let (name, element) = (name.trim(), element.trim());
    let value = |k: &str| match native {
        true => format!("f32({name}_16[{k}])"),
        false => format!("wg_from_{dtype}(wg_half({name}_16[({k}) / 2u], {k}))"),
    };
    let loader = match element {
        "array<f32>" => format!(
            "\nfn wg_read_{name}(j: u32) -> f32 {{\n    return {};\n}}\n",
            value("j")
        ),
        "array<vec4<f32>>" if native => format!(
            "\nfn wg_read_{name}(j: u32) -> vec4<f32> {{\n    \
             return vec4<f32>({}, {}, {}, {});\n}}\n",
            value("4u * j"),
            value("4u * j + 1u"),
            value("4u * j + 2u"),
            value("4u * j + 3u")
        ),
        // Four values in two whole words.
        "array<vec4<f32>>" => format!(
            "\nfn wg_read_{name}(j: u32) -> vec4<f32> {{\n    \
             let lo = {name}_16[2u * j];\n    \
             let hi = {name}_16[2u * j + 1u];\n    \
             return {};\n}}\n",
            decode_4(dtype)
        ),
        _ => return None,
    };
    let storage = if native { "f16" } else { "u32" };
    let mut out = String::with_capacity(code.len() + 256);
    out.push_str(&code[..start]);
    out.push_str(&format!("{name}_16: array<{storage}>"));
    out.push_str(&replace_reads(&code[end..], name)?);
    out.push_str(&loader);
    Some(out)
}

/// The four values of dtype packed in words `lo` and `hi`, as a `vec4<f32>`.
fn decode_4(dtype: DType) -> String {
    format!(
        "vec4<f32>(wg_from_{dtype}(lo & 0xffffu), wg_from_{dtype}(lo >> 16u), \
         wg_from_{dtype}(hi & 0xffffu), wg_from_{dtype}(hi >> 16u))"
    )
}

/// `code` with every `name[expr]` (name a whole identifier) replaced by
/// `wg_read_name(u32(expr))`; `None` if a bracket is unmatched.
fn replace_reads(code: &str, name: &str) -> Option<String> {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some((at, close)) = next_access(rest, name) {
        out.push_str(&rest[..at]);
        let index = replace_reads(&rest[at + name.len() + 1..close], name)?;
        out.push_str(&format!("wg_read_{name}(u32({index}))"));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_an_input_become_conversions() {
        let src = "@group(0) @binding(1) var<storage, read> a: array<f32>;\n\
                   @group(0) @binding(2) var<storage, read_write> c: array<f32>;\n\
                   @group(0) @binding(3) var<storage, read> a_n: array<u32>;\n\
                   var<private> ta: array<f32, 4>;\n\
                   fn f(i: u32) { c[i] = a[i + a_n[0u]] + ta[i] + a[u32(a[0u])]; }";
        let out = read_16_bit(src, &[(1, DType::BF16)], false).unwrap();
        assert!(
            out.contains("var<storage, read> a_16: array<u32>;"),
            "{out}"
        );
        assert!(
            out.contains(
                "c[i] = wg_read_a(u32(i + a_n[0u])) + ta[i] + wg_read_a(u32(u32(wg_read_a(u32(0u)))));"
            ),
            "{out}"
        );
        assert!(out.contains("fn wg_read_a(j: u32) -> f32"), "{out}");
        assert!(out.contains("fn wg_from_bf16("), "{out}");
        crate::shader_check::validate(
            "rewritten",
            &format!(
                "@group(0) @binding(0) var<storage, read> p: array<u32>;\n{out}\n@compute @workgroup_size(1) fn main() {{ f(0u); }}"
            ),
        );
        // A binding that is not a float input is not rewritten.
        assert!(read_16_bit(src, &[(2, DType::F16)], false).is_none());
    }

    #[test]
    fn stores_to_an_output_round_and_pack() {
        let src = "@group(0) @binding(1) var<storage, read> a: array<f32>;\n\
                   @group(0) @binding(2) var<storage, read_write> c: array<f32>;\n\
                   fn f(i: u32) { if (i > 0u) { c[i] = c[i - 1u] + a[i]; }\n c[i + 1u]   =  2.0 * a[c_n(i)]; }\n\
                   fn c_n(i: u32) -> u32 { return i; }";
        let out = write_16_bit(src, 2, DType::F16).unwrap();
        assert!(
            out.contains("var<storage, read_write> c_16: array<atomic<u32>>;"),
            "{out}"
        );
        assert!(
            out.contains("wg_write_c(u32(i), wg_read_c(u32(i - 1u)) + a[i]);"),
            "{out}"
        );
        assert!(
            out.contains("wg_write_c(u32(i + 1u), 2.0 * a[c_n(i)]);"),
            "{out}"
        );
        assert!(out.contains("fn wg_to_f16("), "{out}");
        let main = "@group(0) @binding(0) var<storage, read> p: array<u32>;\n\
                    @compute @workgroup_size(1) fn main() { f(0u); }";
        crate::shader_check::validate("rewritten", &format!("{main}\n{out}"));
        // vec4 stores own their two words.
        let src4 = src
            .replace("c: array<f32>", "c: array<vec4<f32>>")
            .replace("2.0 * a[c_n(i)]", "vec4<f32>(a[i])");
        let src4 = src4.replace("c[i - 1u] + a[i]", "c[i - 1u] + vec4<f32>(a[i])");
        let out = write_16_bit(&src4, 2, DType::BF16).unwrap();
        assert!(out.contains("atomicStore(&c_16[2u * j + 1u]"), "{out}");
        crate::shader_check::validate("rewritten vec4", &format!("{main}\n{out}"));
        // Stores it cannot express are refused, not miscompiled.
        for store in [
            "c[i] += 1.0;",
            "c[i] -= 1.0;",
            "c[i].x = 1.0;",
            "c[i].x *= 2.0;",
        ] {
            let bad = src4.replace("c[i + 1u]   =  vec4<f32>(a[i]);", store);
            assert_ne!(bad, src4);
            assert!(write_16_bit(&bad, 2, DType::F16).is_none(), "{store}");
        }
        // Only a read-write float array is an output.
        assert!(write_16_bit(src, 1, DType::F16).is_none());
    }

    #[test]
    fn native_f16_inputs_are_typed_where_the_device_has_f16() {
        let src = "@group(0) @binding(0) var<storage, read> p: array<u32>;\n\
                   @group(0) @binding(1) var<storage, read> a: array<f32>;\n\
                   @group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;\n\
                   @group(0) @binding(3) var<storage, read_write> c: array<f32>;\n\
                   @compute @workgroup_size(1) fn main() { c[0] = a[p[0]] + b[1].y; }";
        let both = [(1, DType::F16), (2, DType::F16)];
        let native = read_16_bit(src, &both, true).unwrap();
        assert!(native.starts_with("enable f16;"), "{native}");
        assert!(native.contains("a_16: array<f16>;"), "{native}");
        assert!(native.contains("return f32(a_16[j]);"), "{native}");
        assert!(native.contains("f32(b_16[4u * j + 3u])"), "{native}");
        assert!(!native.contains("wg_from_f16"), "{native}");
        let caps = naga::valid::Capabilities::SHADER_FLOAT16;
        crate::shader_check::validate_with("native f16", &native, caps);
        // bf16 has no WGSL type: packed whatever the device.
        let mixed = read_16_bit(src, &[(1, DType::BF16), (2, DType::F16)], true).unwrap();
        assert!(mixed.contains("a_16: array<u32>;"), "{mixed}");
        assert!(mixed.contains("b_16: array<f16>;"), "{mixed}");
        crate::shader_check::validate_with("native f16 and bf16", &mixed, caps);
        let portable = read_16_bit(src, &both, false).unwrap();
        assert!(!portable.contains("enable f16"), "{portable}");
    }
}
