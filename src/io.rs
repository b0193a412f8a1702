//! Saving and loading parameters in the safetensors format (the
//! ecosystem's convention: a JSON header of names, dtypes, shapes and
//! offsets, then the raw little-endian data), so a run can stop and resume,
//! and other tools can read the weights.
//!
//! Named tensors are `(name, &tensor)` pairs, what
//! [`Module::named_parameters`] returns:
//!
//! ```no_run
//! # use webgrad::*; use webgrad::layers::{Linear, Module, Init};
//! # fn f(dev: &Device) -> Result<()> {
//! let model = Linear::new(dev, 4, 2, Init::XavierUniform, 0)?;
//! io::save_blocking("linear.safetensors", &model.named_parameters())?;   // `save(..).await` in a browser
//! io::load("linear.safetensors", &model.named_parameters())?;
//! io::save_module_blocking("model.safetensors", &model)?;                // the same, by module
//! # Ok(()) }
//! ```
//!
//! Saving reads values back from the GPU, so it is async with a
//! `_blocking` twin natively; loading uploads and returns at once. Each
//! tensor is saved in its dtype (F32, F16 or BF16); loading accepts the
//! three into the model's f32 variables (16-bit values widen exactly).

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layers::Module;
use crate::tensor::{Tensor, read_all};

fn err(msg: impl Into<String>) -> Error {
    Error::Checkpoint(msg.into())
}

/// Serializes named tensors (read back from the GPU, in one submit).
pub async fn to_bytes<S: AsRef<str>>(named: &[(S, &Tensor)]) -> Result<Vec<u8>> {
    // safetensors reserves the name __metadata__ and needs unique names:
    // refuse what `from_bytes` could not read back, before any readback.
    let mut seen = std::collections::HashSet::new();
    for (name, _) in named {
        let name = name.as_ref();
        if name == "__metadata__" {
            return Err(err(
                "the name __metadata__ is reserved by the safetensors format",
            ));
        }
        if !seen.insert(name) {
            return Err(err(format!("the name {name} is given twice")));
        }
    }
    let tensors: Vec<&Tensor> = named.iter().map(|n| n.1).collect();
    let values = read_all(&tensors).await?;
    // Each tensor in its own dtype (16-bit values are exact in f32, so
    // narrowing them back loses nothing).
    let bytes: Vec<Vec<u8>> = values
        .iter()
        .zip(&tensors)
        .map(|(v, t)| t.dtype().encode(v))
        .collect();
    let views = named
        .iter()
        .zip(&bytes)
        .map(|((name, t), b)| {
            let dtype = match t.dtype() {
                DType::F32 => Dtype::F32,
                DType::F16 => Dtype::F16,
                DType::BF16 => Dtype::BF16,
            };
            let view =
                TensorView::new(dtype, t.dims().to_vec(), b).map_err(|e| err(e.to_string()))?;
            Ok((name.as_ref().to_string(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut info = HashMap::new();
    info.insert("format".to_string(), "webgrad".to_string());
    safetensors::serialize(views, Some(info)).map_err(|e| err(e.to_string()))
}

/// Loads named tensors into variables of the same names and shapes (one
/// submit, in place). A missing name, a shape or dtype that differs, a
/// tensor in the file that no name asks for (a checkpoint of another
/// model: see [`from_bytes_partial`] to load a part on purpose), or a
/// malformed file is an [`Error::Checkpoint`]; nothing is written then.
pub fn from_bytes<S: AsRef<str>>(bytes: &[u8], named: &[(S, &Tensor)]) -> Result<()> {
    load_named(bytes, named, false)
}

/// [`from_bytes`], but tensors in the file that no name asks for are left
/// unread (loading part of a model, say its encoder, from a larger one).
pub fn from_bytes_partial<S: AsRef<str>>(bytes: &[u8], named: &[(S, &Tensor)]) -> Result<()> {
    load_named(bytes, named, true)
}

fn load_named<S: AsRef<str>>(bytes: &[u8], named: &[(S, &Tensor)], partial: bool) -> Result<()> {
    let file =
        SafeTensors::deserialize(bytes).map_err(|e| err(format!("not a safetensors file: {e}")))?;
    let mut views = Vec::with_capacity(named.len());
    for (name, target) in named {
        let name = name.as_ref();
        assert!(target.is_variable(), "load: {name} is not a variable");
        let view = file
            .tensor(name)
            .map_err(|_| err(format!("the checkpoint has no tensor named {name}")))?;
        if !matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(err(format!(
                "{name} is {:?} in the checkpoint, webgrad reads F32, F16 and BF16",
                view.dtype()
            )));
        }
        if view.shape() != target.dims() {
            return Err(err(format!(
                "{name} has shape {:?} in the checkpoint but {:?} in the model",
                view.shape(),
                target.dims()
            )));
        }
        views.push((view, *target));
    }
    // After the names' own checks: a missing or mis-shaped tensor is the
    // more specific error.
    if !partial {
        let wanted: std::collections::HashSet<&str> =
            named.iter().map(|(n, _)| n.as_ref()).collect();
        let mut unused: Vec<String> = file
            .names()
            .into_iter()
            .filter(|n| !wanted.contains(n))
            .map(str::to_string)
            .collect();
        if !unused.is_empty() {
            unused.sort();
            return Err(err(format!(
                "the checkpoint has {} tensor(s) the model does not: {} (a checkpoint of another model? load a part on purpose with the _partial functions)",
                unused.len(),
                unused
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut uploads = Vec::with_capacity(views.len());
    for (view, target) in views {
        // Variables are f32: 16-bit values widen exactly.
        let dtype = match view.dtype() {
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            _ => DType::F32,
        };
        let data = dtype.decode(view.data(), target.numel());
        uploads.push(target.assign(&Tensor::from_vec(
            target.device(),
            data,
            target.shape().clone(),
        )));
    }
    crate::tensor::submit(&uploads.iter().collect::<Vec<_>>())
}

/// Saves named tensors to a .safetensors file (natively: a browser has no
/// files; use [`to_bytes`] there).
#[cfg(not(target_arch = "wasm32"))]
pub async fn save<S: AsRef<str>>(
    path: impl AsRef<std::path::Path>,
    named: &[(S, &Tensor)],
) -> Result<()> {
    let bytes = to_bytes(named).await?;
    std::fs::write(path.as_ref(), bytes)
        .map_err(|e| err(format!("writing {}: {e}", path.as_ref().display())))
}

/// [`save`], run to completion.
#[cfg(not(target_arch = "wasm32"))]
pub fn save_blocking<S: AsRef<str>>(
    path: impl AsRef<std::path::Path>,
    named: &[(S, &Tensor)],
) -> Result<()> {
    pollster::block_on(save(path, named))
}

/// Loads a .safetensors file into variables (see [`from_bytes`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn load<S: AsRef<str>>(
    path: impl AsRef<std::path::Path>,
    named: &[(S, &Tensor)],
) -> Result<()> {
    let bytes = std::fs::read(path.as_ref())
        .map_err(|e| err(format!("reading {}: {e}", path.as_ref().display())))?;
    from_bytes(&bytes, named)
}

/// Serializes every parameter of `module` under its name (see [`Module`]).
pub async fn module_to_bytes(module: &dyn Module) -> Result<Vec<u8>> {
    to_bytes(&module.named_state()).await
}

/// [`to_bytes`], run to completion (natively; a browser must await).
#[cfg(not(target_arch = "wasm32"))]
pub fn to_bytes_blocking<S: AsRef<str>>(named: &[(S, &Tensor)]) -> Result<Vec<u8>> {
    pollster::block_on(to_bytes(named))
}

/// [`module_to_bytes`], run to completion (natively; a browser must await).
#[cfg(not(target_arch = "wasm32"))]
pub fn module_to_bytes_blocking(module: &dyn Module) -> Result<Vec<u8>> {
    pollster::block_on(module_to_bytes(module))
}

/// Loads every parameter of `module` from bytes written by
/// [`module_to_bytes`] or [`save_module`] (see [`from_bytes`]).
pub fn module_from_bytes(bytes: &[u8], module: &dyn Module) -> Result<()> {
    from_bytes(bytes, &module.named_state())
}

/// Saves every parameter of `module` under its name.
#[cfg(not(target_arch = "wasm32"))]
pub async fn save_module(path: impl AsRef<std::path::Path>, module: &dyn Module) -> Result<()> {
    save(path, &module.named_state()).await
}

/// [`save_module`], run to completion.
#[cfg(not(target_arch = "wasm32"))]
pub fn save_module_blocking(path: impl AsRef<std::path::Path>, module: &dyn Module) -> Result<()> {
    pollster::block_on(save_module(path, module))
}

/// Loads every parameter of `module` from a file written by
/// [`save_module`]: each name must be present with the same shape, and
/// the file must hold no other tensor.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_module(path: impl AsRef<std::path::Path>, module: &dyn Module) -> Result<()> {
    load(path, &module.named_state())
}

/// [`load_module`] from a file that may hold more tensors than `module`
/// has (see [`from_bytes_partial`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn load_module_partial(path: impl AsRef<std::path::Path>, module: &dyn Module) -> Result<()> {
    let bytes = std::fs::read(path.as_ref())
        .map_err(|e| err(format!("reading {}: {e}", path.as_ref().display())))?;
    from_bytes_partial(&bytes, &module.named_state())
}
