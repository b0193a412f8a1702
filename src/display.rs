//! `Display` for tensors: the values, abbreviated as numpy and PyTorch
//! print them, with the shape, dtype and device.

use std::fmt;

use crate::tensor::Tensor;

/// Above this many elements only the first and last `EDGE` entries of each
/// axis are shown (numpy's `threshold` and `edgeitems`).
const THRESHOLD: usize = 1000;
const EDGE: usize = 3;

/// Printing reads the values: natively it realizes the tensor and waits
/// (a read, so it runs pending kernels); a tensor of a reference-only
/// device is evaluated by the f64 reference (rounded to f32); in a browser,
/// which cannot wait, the values are not shown (read them with
/// `to_vec().await`). A failed read prints the error instead.
///
/// ```text
/// tensor([[ 1.0000,  2.0000, ...,  9.0000],
///         ...
///         [ 0.5000, -1.0000, ...,  3.0000]], shape=[100, 50], dtype=f32, device=Device#1(llvmpipe ... on Vulkan))
/// ```
impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = format!(
            "shape={:?}, dtype={}, device={:?}",
            self.dims(),
            self.dtype(),
            self.device()
        );
        match values(self) {
            Ok(Some(v)) => {
                let precision = f.precision().unwrap_or(4);
                write!(f, "tensor({}, {tail})", render(&v, self.dims(), precision))
            }
            Ok(None) => write!(f, "tensor(<not read: use to_vec().await>, {tail})"),
            Err(e) => write!(f, "tensor(<{e}>, {tail})"),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn values(t: &Tensor) -> crate::Result<Option<Vec<f32>>> {
    if t.device().gpu.is_none() {
        let v = crate::reference::eval(t)?;
        return Ok(Some(v.into_iter().map(|x| x as f32).collect()));
    }
    t.to_vec_blocking().map(Some)
}

#[cfg(target_arch = "wasm32")]
fn values(t: &Tensor) -> crate::Result<Option<Vec<f32>>> {
    if t.device().gpu.is_none() {
        let v = crate::reference::eval(t)?;
        return Ok(Some(v.into_iter().map(|x| x as f32).collect()));
    }
    Ok(None)
}

/// The values as nested brackets, every number in one width, long axes
/// cut to their first and last `EDGE` entries when the tensor is large.
fn render(values: &[f32], dims: &[usize], precision: usize) -> String {
    if dims.is_empty() {
        return format!("{:.precision$}", values[0]);
    }
    let summarize = values.len() > THRESHOLD;
    let shown = |n: usize| -> Vec<Option<usize>> {
        if summarize && n > 2 * EDGE {
            (0..EDGE)
                .map(Some)
                .chain([None])
                .chain((n - EDGE..n).map(Some))
                .collect()
        } else {
            (0..n).map(Some).collect()
        }
    };
    let numbers: Vec<String> = values.iter().map(|v| format!("{v:.precision$}")).collect();
    let width = numbers.iter().map(String::len).max().unwrap_or(1);
    let strides: Vec<usize> = (0..dims.len())
        .map(|a| dims[a + 1..].iter().product())
        .collect();
    // Depth-first over the axes with an explicit stack: (axis, offset of
    // the sub-tensor, entries still to print at this axis).
    let mut out = String::new();
    let indent = "tensor(".len();
    let mut stack: Vec<(usize, usize, std::vec::IntoIter<Option<usize>>)> =
        vec![(0, 0, shown(dims[0]).into_iter())];
    out.push('[');
    let mut first = vec![true; dims.len()];
    while let Some((axis, offset, mut entries)) = stack.pop() {
        let Some(entry) = entries.next() else {
            out.push(']');
            continue;
        };
        let last_axis = axis + 1 == dims.len();
        if !first[axis] {
            out.push(',');
            if last_axis {
                out.push(' ');
            } else {
                out.push_str(&"\n".repeat(dims.len() - axis - 1));
                out.push_str(&" ".repeat(indent + axis + 1));
            }
        }
        first[axis] = false;
        stack.push((axis, offset, entries));
        match entry {
            None => out.push_str("..."),
            Some(i) if last_axis => {
                out.push_str(&format!("{:>width$}", numbers[offset + i]));
            }
            Some(i) => {
                out.push('[');
                first[axis + 1] = true;
                let inner = offset + i * strides[axis];
                stack.push((axis + 1, inner, shown(dims[axis + 1]).into_iter()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn small_tensors_print_every_value_aligned() {
        assert_eq!(render(&[2.5], &[], 2), "2.50");
        assert_eq!(render(&[1.0, -2.0, 3.0], &[3], 1), "[ 1.0, -2.0,  3.0]");
        assert_eq!(
            render(&[1.0, 2.0, 3.0, 4.0], &[2, 2], 0),
            "[[1, 2],\n        [3, 4]]"
        );
        assert_eq!(render(&[], &[0], 4), "[]");
    }

    #[test]
    fn large_tensors_print_their_edges() {
        let v: Vec<f32> = (0..2000).map(|i| i as f32).collect();
        let s = render(&v, &[2000], 0);
        assert_eq!(s, "[   0,    1,    2, ..., 1997, 1998, 1999]");
        let m = render(&v, &[40, 50], 0);
        assert!(
            m.starts_with("[[   0,    1,    2, ...,   47,   48,   49],"),
            "{m}"
        );
        assert!(m.contains("\n        ...,\n"), "{m}");
        assert!(
            m.ends_with("[1950, 1951, 1952, ..., 1997, 1998, 1999]]"),
            "{m}"
        );
    }
}
