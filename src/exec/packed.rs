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
//! The rewrite is textual on purpose: reads of a read-only storage array
//! are the only uses WGSL allows of it besides `arrayLength` (which no
//! kernel calls), and naga validates the result like every kernel (the
//! shader tests rewrite every specialization of every family for every
//! input, see `shader_check.rs`).

use crate::dtype::DType;

/// `source` with the input arrays at the given bindings (binding number,
/// dtype of its values) read as packed 16-bit values. `None` if a binding
/// is not declared as a read-only `array<f32>` or `array<vec4<f32>>`.
pub(crate) fn read_16_bit(source: &str, packed: &[(usize, DType)]) -> Option<String> {
    let mut code = source.to_string();
    for &(binding, dtype) in packed {
        code = rewrite_binding(&code, binding, dtype)?;
    }
    super::codegen::append_helpers(&mut code, DType::F32);
    Some(code)
}

/// One binding's declaration and reads rewritten.
fn rewrite_binding(code: &str, binding: usize, dtype: DType) -> Option<String> {
    let marker = format!("@binding({binding}) var<storage, read> ");
    let start = code.find(&marker)? + marker.len();
    let end = start + code[start..].find(';')?;
    let (name, element) = code[start..end].split_once(':')?;
    let (name, element) = (name.trim(), element.trim());
    let loader = match element {
        "array<f32>" => format!(
            "\nfn wg_read_{name}(j: u32) -> f32 {{\n    \
             return wg_from_{dtype}(wg_half({name}_16[j / 2u], j));\n}}\n"
        ),
        "array<vec4<f32>>" => format!(
            "\nfn wg_read_{name}(j: u32) -> vec4<f32> {{\n    \
             let lo = {name}_16[2u * j];\n    \
             let hi = {name}_16[2u * j + 1u];\n    \
             return vec4<f32>(wg_from_{dtype}(lo & 0xffffu), wg_from_{dtype}(lo >> 16u), \
             wg_from_{dtype}(hi & 0xffffu), wg_from_{dtype}(hi >> 16u));\n}}\n"
        ),
        _ => return None,
    };
    let mut out = String::with_capacity(code.len() + 256);
    out.push_str(&code[..start]);
    out.push_str(&format!("{name}_16: array<u32>"));
    out.push_str(&replace_reads(&code[end..], name)?);
    out.push_str(&loader);
    Some(out)
}

/// `code` with every `name[expr]` (name a whole identifier) replaced by
/// `wg_read_name(u32(expr))`; `None` if a bracket is unmatched.
fn replace_reads(code: &str, name: &str) -> Option<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let pattern = format!("{name}[");
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(&pattern) {
        let whole = !rest[..at].chars().next_back().is_some_and(is_ident);
        if !whole {
            out.push_str(&rest[..at + pattern.len()]);
            rest = &rest[at + pattern.len()..];
            continue;
        }
        out.push_str(&rest[..at]);
        let inner = &rest[at + pattern.len()..];
        let mut depth = 1usize;
        let close = inner.char_indices().find_map(|(i, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(i)
        })?;
        let index = replace_reads(&inner[..close], name)?;
        out.push_str(&format!("wg_read_{name}(u32({index}))"));
        rest = &inner[close + 1..];
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
        let out = read_16_bit(src, &[(1, DType::BF16)]).unwrap();
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
        assert!(read_16_bit(src, &[(2, DType::F16)]).is_none());
    }
}
