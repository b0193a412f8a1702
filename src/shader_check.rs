//! naga's validation of WGSL under WebGPU's default capabilities (no GPU
//! needed), for the tests of every kernel family and of the executor's own
//! kernels: each validates its shaders where they are written.

pub(crate) fn validate(name: &str, source: &str) {
    validate_with(name, source, naga::valid::Capabilities::default());
}

/// [`validate`] with the capabilities of a device that has them (the
/// native-only subgroup kernels).
pub(crate) fn validate_with(name: &str, source: &str, capabilities: naga::valid::Capabilities) {
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
