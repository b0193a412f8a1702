//! Seeded host-side random numbers, so a seed gives the same tensor on every
//! device and platform (including the f64 reference).

/// SplitMix64: tiny, fast, and good enough for initialisation and test data.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// `n` samples uniform in [lo, hi).
pub(crate) fn uniform(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let v = lo as f64 + (hi as f64 - lo as f64) * rng.next_f64();
            // Rounding to f32 can land exactly on `hi`; keep the interval half-open.
            let v = v as f32;
            if v >= hi { lo.max(next_down(hi)) } else { v }
        })
        .collect()
}

/// `n` samples from N(mean, std²) by the Box–Muller transform.
pub(crate) fn normal(n: usize, mean: f32, std: f32, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u1 = 1.0 - rng.next_f64(); // (0, 1]: ln is finite
        let u2 = rng.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        out.push((mean as f64 + std as f64 * r * t.cos()) as f32);
        if out.len() < n {
            out.push((mean as f64 + std as f64 * r * t.sin()) as f32);
        }
    }
    out
}

/// The largest f32 below `x` (finite `x`; `f32::next_down` needs Rust 1.86).
fn next_down(x: f32) -> f32 {
    if x == 0.0 {
        -f32::from_bits(1)
    } else if x > 0.0 {
        f32::from_bits(x.to_bits() - 1)
    } else {
        f32::from_bits(x.to_bits() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_is_reproducible_and_in_range() {
        let a = uniform(10_000, -1.0, 1.0, 7);
        assert_eq!(a, uniform(10_000, -1.0, 1.0, 7));
        assert_ne!(a, uniform(10_000, -1.0, 1.0, 8));
        assert!(a.iter().all(|&v| (-1.0..1.0).contains(&v)));
        let mean: f64 = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
    }

    #[test]
    fn normal_has_the_requested_moments() {
        let a = normal(20_000, 2.0, 3.0, 1);
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!((mean - 2.0).abs() < 0.06, "mean {mean}");
        assert!((var.sqrt() - 3.0).abs() < 0.06, "std {}", var.sqrt());
    }
}
