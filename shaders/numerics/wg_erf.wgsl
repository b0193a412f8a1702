// erf(x) by Abramowitz & Stegun 7.1.26 on |x| (absolute error < 1.5e-7),
// odd in x.
fn wg_erf(x: f32) -> f32 {
    let a = abs(x);
    if (a < 0.5) {
        // Maclaurin series to x^11 (the next term is below f32's relative
        // precision here): relative accuracy down to 0 and subnormals,
        // where the rational fit's absolute error (1.5e-7) would swamp
        // erf(x) ≈ 1.128·x.
        let z = x * x;
        let s = 1.0 - z * (1.0 / 3.0 - z * (1.0 / 10.0 - z * (1.0 / 42.0 - z * (1.0 / 216.0 - z * (1.0 / 1320.0)))));
        return 1.1283791670955126 * x * s;
    }
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let y = 1.0 - poly * exp(-a * a);
    return select(y, -y, x < 0.0);
}
