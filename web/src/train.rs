//! Part 2 of the page: a small MLP learning a three-arm spiral, stepped from
//! the page's event loop; every readback is async.

use webgrad::data::{Dataset, argmax_rows, grid_points, spiral};
use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Adam, Optimizer};
use webgrad::{Device, Result, Tensor, grad, read_all, read_and_realize, submit};

pub const CLASSES: usize = 3;

pub struct Trainer {
    dev: Device,
    data: Dataset,
    x: Tensor,
    model: Mlp,
    opt: Adam,
    pub steps: u32,
}

impl Trainer {
    pub fn new(dev: &Device, seed: u64) -> Result<Trainer> {
        let data = spiral(CLASSES, 100, 7);
        let (x, _) = data.tensors(dev);
        let model = Mlp::new(
            dev,
            &[2, 32, 32, CLASSES],
            Activation::Relu,
            Init::KaimingUniform,
            seed,
        )?;
        Ok(Trainer {
            dev: dev.clone(),
            data,
            x,
            model,
            opt: Adam::new(1e-2),
            steps: 0,
        })
    }

    pub fn points(&self) -> &Dataset {
        &self.data
    }

    /// `steps` optimizer steps, each one submit; only the last reads its loss back.
    pub async fn train(&mut self, steps: u32) -> Result<f32> {
        let params = self.model.parameters();
        let mut last = f32::NAN;
        for s in 0..steps {
            let loss = self.model.forward(&self.x).cross_entropy(&self.data.labels);
            let grads = grad(&loss, &params);
            let updates = self.opt.step(&params, &grads)?;
            let handles: Vec<&Tensor> = updates.iter().collect();
            if s + 1 == steps {
                last = read_and_realize(&[&loss], &handles).await?[0][0];
            } else {
                submit(&handles)?;
            }
            self.steps += 1;
        }
        Ok(last)
    }

    /// The predicted class of each cell of a `res`×`res` grid over
    /// [−extent, extent]², row by row from the top.
    pub async fn regions(&self, res: usize, extent: f32) -> Result<Vec<u8>> {
        let grid = grid_points(res, extent);
        let logits = self
            .model
            .forward(&Tensor::from_vec(&self.dev, grid, [res * res, 2]));
        let v = read_all(&[&logits]).await?.remove(0);
        Ok(argmax_rows(&v, CLASSES)
            .into_iter()
            .map(|c| c as u8)
            .collect())
    }
}
