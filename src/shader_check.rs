//! naga's validation of WGSL under WebGPU's default capabilities (no GPU
//! needed), for the tests of every kernel family and of the executor's own
//! kernels: each validates its shaders where they are written.

pub(crate) fn validate(name: &str, source: &str) {
    validate_with(name, source, naga::valid::Capabilities::default());
}

/// [`validate`] with the capabilities of a device that has them (the
/// native-only subgroup kernels). Every float input binding of the kernel
/// is also validated as the executor rewrites it to read 16-bit values
/// (`exec/packed.rs`), one binding at a time and all together, so every
/// specialization the shader tests generate is checked in 16 bits too.
pub(crate) fn validate_with(name: &str, source: &str, capabilities: naga::valid::Capabilities) {
    validate_one(name, source, capabilities);
    let inputs: Vec<(usize, crate::dtype::DType)> = (1..16)
        .filter(|&b| {
            crate::exec::packed::read_16_bit(source, &[(b, crate::dtype::DType::F16)]).is_some()
        })
        .map(|b| (b, crate::dtype::DType::F16))
        .collect();
    for &input in &inputs {
        for dtype in [crate::dtype::DType::F16, crate::dtype::DType::BF16] {
            let rewritten =
                crate::exec::packed::read_16_bit(source, &[(input.0, dtype)]).expect("rewritable");
            validate_one(
                &format!("{name} (binding {} in {dtype})", input.0),
                &rewritten,
                capabilities,
            );
        }
    }
    if inputs.len() > 1 {
        let rewritten = crate::exec::packed::read_16_bit(source, &inputs).expect("rewritable");
        validate_one(
            &format!("{name} (every input in f16)"),
            &rewritten,
            capabilities,
        );
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
