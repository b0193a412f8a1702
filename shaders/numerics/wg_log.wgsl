// Domain errors give NaN on every adapter (WGSL leaves log and sqrt of a
// negative number to the driver; one browser returned 0), log(±0) = −∞.
// NaN stays NaN.
fn wg_log(x: f32) -> f32 {
    if (wg_isnan(x)) {
        return x;
    }
    if (x == 0.0) {
        // SwiftShader returns −88 (the log of the smallest normal).
        return -wg_inf();
    }
    return select(log(x), wg_nan(), x < 0.0);
}
