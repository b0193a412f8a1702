// log(1 + x) without cancellation: the Taylor series to x⁸ for |x| < 0.1
// (truncation below 1e-9 relative), the direct formula beyond. (Rewriting
// tricks like Goldberg's depend on an exact `log` near 1, which drivers'
// fast math does not give.)
fn wg_log1p(x: f32) -> f32 {
    if (abs(x) < 0.1) {
        return x * (1.0 + x * (-0.5 + x * (0.33333333 + x * (-0.25 + x * (0.2 + x * (-0.16666667 + x * (0.14285714 + x * -0.125)))))));
    }
    return wg_log(1.0 + x);
}
