// x^c by IEEE 754's pow (C's, numpy's, PyTorch's and the f64
// reference's): x^±0 = 1 and 1^c = 1 even for NaN, NaN otherwise
// propagates; (±0)^c and (±∞)^c by the sign of c and the parity of an
// integer c; |x|^±∞ by whether |x| > 1, with (−1)^±∞ = 1; a negative x
// only for integer c (sign from its parity), NaN otherwise. WGSL's `pow`
// is only defined for x > 0, so everything else is decided here.
fn wg_pow(x: f32, c: f32) -> f32 {
    if (c == 0.0 || x == 1.0) {
        return 1.0;
    }
    if (wg_isnan(x) || wg_isnan(c)) {
        return wg_nan();
    }
    let ax = abs(x);
    let ac = abs(c);
    if (wg_isinf(c)) {
        if (ax == 1.0) {
            return 1.0;
        }
        return select(0.0, wg_inf(), (ax > 1.0) == (c > 0.0));
    }
    // Every f32 of magnitude 2^24 or more is an even integer.
    let integer = ac >= 16777216.0 || fract(ac) == 0.0;
    let odd = ac < 16777216.0 && integer && fract(ac * 0.5) != 0.0;
    let negative = x < 0.0 || (x == 0.0 && bitcast<u32>(x) != 0u);
    var m: f32;
    if (x == 0.0 || wg_isinf(x)) {
        // 0^c and inf^c: 0 or inf by the sign of c (and of the base's exponent).
        m = select(0.0, wg_inf(), (c > 0.0) == (ax > 1.0));
    } else if (x > 0.0) {
        return pow(x, c);
    } else if (integer) {
        m = pow(ax, c);
    } else {
        return wg_nan();
    }
    return select(m, -m, negative && odd);
}
