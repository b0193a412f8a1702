//! The WASM module behind web/index.html: webgrad running on the browser's
//! WebGPU. Everything the page calls returns a Promise; nothing blocks.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::json;
use wasm_bindgen::prelude::*;
use webgrad::Device;

mod bench;
mod differentiate;
mod models;
mod train;

fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

/// A WebGPU device and what the page needs of it.
#[wasm_bindgen]
pub struct Session {
    dev: Device,
}

#[wasm_bindgen]
impl Session {
    /// Requests an adapter and device (WebGPU baseline limits).
    pub async fn create() -> Result<Session, JsValue> {
        Ok(Session {
            dev: Device::new().await.map_err(js_err)?,
        })
    }

    /// The adapter and the limits in force, as JSON.
    pub fn adapter(&self) -> String {
        let a = self.dev.adapter().unwrap();
        let l = self.dev.limits().unwrap();
        let name = if a.name.is_empty() {
            "(unnamed adapter)"
        } else {
            &a.name
        };
        json!({"name": name, "backend": &a.backend, "device_type": &a.device_type, "shader_f16": a.shader_f16, "native_f16": self.dev.native_f16(), "max_storage_buffer_binding_size": l.max_storage_buffer_binding_size, "max_storage_buffers_per_shader_stage": l.max_storage_buffers_per_shader_stage, "max_compute_workgroups_per_dimension": l.max_compute_workgroups_per_dimension, "max_compute_invocations_per_workgroup": l.max_compute_invocations_per_workgroup})
        .to_string()
    }

    /// Differentiates `expr` at the values given as "x1=2, x2=5"; `wrt` is
    /// the input whose tangents forward mode shows. Resolves to JSON.
    pub fn differentiate(&self, expr: String, values: String, wrt: String) -> js_sys::Promise {
        let dev = self.dev.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let parsed: Result<Vec<(String, f64)>, String> = values
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|kv| {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| format!("expected name=value, got {kv:?}"))?;
                    let v: f64 = v
                        .trim()
                        .parse()
                        .map_err(|_| format!("{:?} is not a number", v.trim()))?;
                    Ok((k.trim().to_string(), v))
                })
                .collect();
            let values = match parsed {
                Ok(v) => v,
                Err(msg) => {
                    let out = json!({"ok": false, "position": null, "message": &msg}).to_string();
                    return Ok(JsValue::from_str(&out));
                }
            };
            let out = differentiate::differentiate(&dev, &expr, &values, &wrt)
                .await
                .map_err(js_err)?;
            Ok(JsValue::from_str(&out))
        })
    }

    /// The bench's workload groups, in order (see `bench.html`).
    pub fn bench_groups(&self) -> Vec<String> {
        bench::GROUPS.iter().map(|g| g.to_string()).collect()
    }

    /// Runs one workload group of the bench on this device; resolves to its
    /// JSON lines, one per workload, joined by newlines. `quick`: one timed
    /// run each instead of the median of several.
    pub fn bench(&self, group: String, quick: bool) -> js_sys::Promise {
        let dev = self.dev.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let lines = bench::run(&dev, &group, quick).await.map_err(js_err)?;
            Ok(JsValue::from_str(&lines.join("\n")))
        })
    }

    /// Checks that a GPU error is reported by the realize that caused it:
    /// injects one invalid command into a realize, expects that realize to
    /// fail, then expects the next realize and a read to succeed. Resolves
    /// to "ok: <the error>" or rejects with what went wrong (for the
    /// headless browser test).
    pub fn error_scope_check(&self) -> js_sys::Promise {
        let dev = self.dev.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let x = webgrad::Tensor::from_vec(&dev, vec![1.0, 2.0], [2]);
            let y = &x * 3.0;
            dev.inject_validation_error();
            let caught = match y.realize().await {
                Err(webgrad::Error::Validation(msg)) => msg,
                other => return Err(js_err(format!("the failing realize returned {other:?}"))),
            };
            let z = &x + 1.0;
            z.realize()
                .await
                .map_err(|e| js_err(format!("the next realize failed: {e}")))?;
            let got = z
                .to_vec()
                .await
                .map_err(|e| js_err(format!("the read failed: {e}")))?;
            if got != [2.0, 3.0] {
                return Err(js_err(format!("the read gave {got:?}")));
            }
            Ok(JsValue::from_str(&format!("ok: {caught}")))
        })
    }

    /// The NaN, infinity and domain rules (README, "Errors") on this
    /// adapter: each line is "case = value" for the headless browser
    /// test, which compares them with the f64 reference's values.
    pub fn special_values(&self) -> js_sys::Promise {
        let dev = self.dev.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            use webgrad::Tensor;
            let nan = f32::NAN;
            let v = |x: Vec<f32>| Tensor::from_vec(&dev, x.clone(), [x.len()]);
            let cases: Vec<(&str, Tensor)> = vec![
                ("powf(NaN, 3)", v(vec![nan]).powf(3.0)),
                ("pow(1, NaN)", v(vec![1.0]).pow(&v(vec![nan]))),
                (
                    "pow(-0, -inf)",
                    v(vec![-0.0]).pow(&v(vec![f32::NEG_INFINITY])),
                ),
                ("pow(-2, 0.5)", v(vec![-2.0]).pow(&v(vec![0.5]))),
                ("tanh(NaN)", v(vec![nan]).tanh()),
                ("relu(NaN)", v(vec![nan]).relu()),
                ("max([1, NaN, 3])", v(vec![1.0, nan, 3.0]).max()),
                ("ne(NaN, NaN)", v(vec![nan]).ne(&v(vec![nan]))),
                ("eq(NaN, NaN)", v(vec![nan]).eq(&v(vec![nan]))),
                ("sqrt(-1)", v(vec![-1.0]).sqrt()),
                ("log(-1)", v(vec![-1.0]).log()),
                ("log(0)", v(vec![0.0]).log()),
                ("0/0", v(vec![0.0]) / v(vec![0.0])),
                ("mean([])", v(vec![]).mean()),
            ];
            let tensors: Vec<&Tensor> = cases.iter().map(|(_, t)| t).collect();
            let values = webgrad::read_all(&tensors).await.map_err(js_err)?;
            let lines: Vec<String> = cases
                .iter()
                .zip(values)
                .map(|((name, _), v)| format!("{name} = {:?}", v[0]))
                .collect();
            Ok(JsValue::from_str(&lines.join("\n")))
        })
    }

    /// A trainer of the digits CNN on this device, its activations in
    /// `precision` ("f32", "bf16" or "f16").
    pub fn cnn(&self, seed: u32, precision: String) -> Result<CnnTrainer, JsValue> {
        let precision: webgrad::DType = precision.parse().map_err(js_err)?;
        let inner = models::CnnTrainer::new(&self.dev, seed as u64, precision).map_err(js_err)?;
        Ok(CnnTrainer {
            inner: Rc::new(RefCell::new(inner)),
        })
    }

    /// A spiral trainer on this device.
    pub fn trainer(&self, seed: u32) -> Result<Trainer, JsValue> {
        let inner = train::Trainer::new(&self.dev, seed as u64).map_err(js_err)?;
        Ok(Trainer {
            inner: Rc::new(RefCell::new(inner)),
        })
    }
}

/// What the page's trainers share: some steps per call, the last loss back.
trait Steps {
    async fn train(&mut self, steps: u32) -> webgrad::Result<f32>;
}

impl Steps for train::Trainer {
    async fn train(&mut self, steps: u32) -> webgrad::Result<f32> {
        train::Trainer::train(self, steps).await
    }
}

impl Steps for models::CnnTrainer {
    async fn train(&mut self, steps: u32) -> webgrad::Result<f32> {
        models::CnnTrainer::train(self, steps).await
    }
}

/// A promise that runs `steps` of the trainer and resolves to the last
/// step's loss. The borrow spans the awaits on purpose: a second call
/// while one runs gets `busy` from try_borrow instead of interleaving
/// steps (the page awaits each call before the next, so it never is).
#[allow(clippy::await_holding_refcell_ref)]
fn train_promise<T: Steps + 'static>(
    inner: Rc<RefCell<T>>,
    steps: u32,
    busy: &'static str,
) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(async move {
        let mut t = inner.try_borrow_mut().map_err(|_| js_err(busy))?;
        let loss = t.train(steps).await.map_err(js_err)?;
        Ok(JsValue::from_f64(loss as f64))
    })
}

/// Trains an MLP on a spiral, a few steps per call.
#[wasm_bindgen]
pub struct Trainer {
    inner: Rc<RefCell<train::Trainer>>,
}

#[wasm_bindgen]
impl Trainer {
    /// Runs `steps` training steps; resolves to the last step's loss.
    pub fn train(&self, steps: u32) -> js_sys::Promise {
        train_promise(self.inner.clone(), steps, "the trainer is busy")
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.inner.borrow().steps
    }

    /// Resolves to a Uint8Array of the predicted class per grid cell.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn regions(&self, res: u32, extent: f32) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let t = inner
                .try_borrow()
                .map_err(|_| js_err("the trainer is busy"))?;
            let classes = t.regions(res as usize, extent).await.map_err(js_err)?;
            Ok(js_sys::Uint8Array::from(&classes[..]).into())
        })
    }

    /// The training points, x and y interleaved.
    pub fn points(&self) -> Vec<f32> {
        self.inner.borrow().points().inputs.clone()
    }

    /// The training labels.
    pub fn labels(&self) -> Vec<u8> {
        self.inner
            .borrow()
            .points()
            .labels
            .iter()
            .map(|&l| l as u8)
            .collect()
    }
}

/// Trains the digits CNN a few steps per call, and reads drawings.
#[wasm_bindgen]
pub struct CnnTrainer {
    inner: Rc<RefCell<models::CnnTrainer>>,
}

#[wasm_bindgen]
impl CnnTrainer {
    /// Runs `steps` Adam steps; resolves to the last step's loss.
    pub fn train(&self, steps: u32) -> js_sys::Promise {
        train_promise(self.inner.clone(), steps, "the CNN trainer is busy")
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.inner.borrow().steps
    }

    /// Resolves to the test accuracy (a fraction).
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn test_accuracy(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let t = inner
                .try_borrow()
                .map_err(|_| js_err("the CNN trainer is busy"))?;
            let acc = t.test_accuracy().await.map_err(js_err)?;
            Ok(JsValue::from_f64(acc))
        })
    }

    /// Resolves to JSON {class, probabilities[10], saliency[64]} for 64
    /// pixels in [0, 1].
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn predict(&self, pixels: Vec<f32>) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            if pixels.len() != 64 {
                return Err(js_err(format!(
                    "predict: 64 pixels expected, got {}",
                    pixels.len()
                )));
            }
            let t = inner
                .try_borrow()
                .map_err(|_| js_err("the CNN trainer is busy"))?;
            let p = t.predict(&pixels).await.map_err(js_err)?;
            let out =
                json!({"class": p.class, "probabilities": p.probabilities, "saliency": p.saliency});
            Ok(JsValue::from_str(&out.to_string()))
        })
    }
}
