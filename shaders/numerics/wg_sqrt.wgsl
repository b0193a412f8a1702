fn wg_sqrt(x: f32) -> f32 {
    if (wg_isnan(x)) {
        return x;
    }
    return select(sqrt(x), wg_nan(), x < 0.0);
}
