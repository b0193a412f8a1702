//! naga's validation of WGSL under WebGPU's default capabilities (no GPU
//! needed), for the tests of every kernel family and of the executor's own
//! kernels: each validates its shaders where they are written.

use crate::dtype::DType;
use crate::exec::packed::{read_16_bit, write_16_bit};

pub(crate) fn validate(name: &str, source: &str) {
    validate_with(name, source, naga::valid::Capabilities::default());
}

/// [`validate`] with the capabilities of a device that has them (the
/// native-only subgroup kernels). Every float input binding of the kernel
/// is also validated as the executor rewrites it to read 16-bit values
/// (packed, and as WGSL's `f16`), and every float output binding as
/// rewritten to store them
/// (`exec/packed.rs`), one binding at a time and all together, so every
/// specialization the shader tests generate is checked in 16 bits too.
pub(crate) fn validate_with(name: &str, source: &str, capabilities: naga::valid::Capabilities) {
    validate_one(name, source, capabilities);
    let inputs: Vec<(usize, DType)> = (1..16)
        .filter(|&b| read_16_bit(source, &[(b, DType::F16)], false).is_some())
        .map(|b| (b, DType::F16))
        .collect();
    let outputs: Vec<usize> = (1..16)
        .filter(|&b| write_16_bit(source, b, DType::F16).is_some())
        .collect();
    for dtype in [DType::F16, DType::BF16] {
        for &(binding, _) in &inputs {
            let rewritten = read_16_bit(source, &[(binding, dtype)], false).expect("rewritable");
            let what = format!("{name} (input binding {binding} in {dtype})");
            validate_one(&what, &rewritten, capabilities);
        }
        for &binding in &outputs {
            let rewritten = write_16_bit(source, binding, dtype).expect("rewritable");
            let what = format!("{name} (output binding {binding} in {dtype})");
            validate_one(&what, &rewritten, capabilities);
        }
    }
    if inputs.len() + outputs.len() > 1 {
        let mut rewritten = source.to_string();
        if !inputs.is_empty() {
            rewritten = read_16_bit(&rewritten, &inputs, false).expect("rewritable");
        }
        if let Some(&output) = outputs.first() {
            rewritten = write_16_bit(&rewritten, output, DType::F16).expect("rewritable");
        }
        let what = format!("{name} (every input and its output in f16)");
        validate_one(&what, &rewritten, capabilities);
    }
    // The inputs as WGSL's f16, where the device has `shader-f16`.
    if !inputs.is_empty() {
        let rewritten = read_16_bit(source, &inputs, true).expect("rewritable");
        let what = format!("{name} (every input as native f16)");
        let f16 = capabilities | naga::valid::Capabilities::SHADER_FLOAT16;
        validate_one(&what, &rewritten, f16);
    }
}

fn validate_one(name: &str, source: &str, capabilities: naga::valid::Capabilities) {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| {
        panic!(
            "{name}: WGSL parse error:\n{}\n{source}",
            e.emit_to_string(source)
        )
    });
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "{name}: WGSL validation error:\n{}\n{source}",
                e.emit_to_string(source)
            )
        });
}
