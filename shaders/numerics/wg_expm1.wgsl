// eˣ − 1 without cancellation: the Taylor series to x⁸ for |x| < 0.1,
// exp(x) − 1 beyond.
fn wg_expm1(x: f32) -> f32 {
    if (abs(x) < 0.1) {
        return x * (1.0 + x * (0.5 + x * (0.16666667 + x * (0.041666668 + x * (0.008333334 + x * (0.0013888889 + x * (0.0001984127 + x * 0.0000248016)))))));
    }
    return exp(x) - 1.0;
}
