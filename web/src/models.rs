//! Part 3 of the page: the digits CNN trained in the page, then used on a
//! drawing — class probabilities and a saliency map (the gradient of the
//! top class's logit with respect to each input pixel, by reverse mode).

use webgrad::data::Dataset;
use webgrad::layers::Module;
use webgrad::models::DigitsCnn;
use webgrad::optim::{Adam, LossScaler, Optimizer};
use webgrad::{DType, Device, Result, Tensor, autocast, grad, read_all};

pub struct CnnTrainer {
    dev: Device,
    train: Dataset,
    test: Dataset,
    model: DigitsCnn,
    opt: Adam,
    /// The activations' dtype (the parameters and Adam stay f32).
    pub precision: DType,
    /// Loss scaling, for f16.
    scaler: Option<LossScaler>,
    pub steps: u32,
    epoch: u64,
    batch: usize,
}

/// What the page shows for one drawing.
pub struct Prediction {
    pub probabilities: Vec<f32>,
    pub class: usize,
    /// ∂ logit[class] / ∂ pixel, 64 values, row by row.
    pub saliency: Vec<f32>,
}

const BATCH: usize = 32;

impl CnnTrainer {
    pub fn new(dev: &Device, seed: u64, precision: DType) -> Result<CnnTrainer> {
        let (train, test) = Dataset::digits()?.split(0.2, 0);
        let scaler = match precision {
            DType::F16 => Some(LossScaler::new(dev)?),
            _ => None,
        };
        Ok(CnnTrainer {
            dev: dev.clone(),
            train,
            test,
            model: DigitsCnn::new(dev, seed)?,
            opt: Adam::new(3e-3),
            precision,
            scaler,
            steps: 0,
            epoch: 0,
            batch: 0,
        })
    }

    /// `steps` Adam steps on mini-batches (reshuffled, shifted by up to a
    /// pixel each epoch, as in examples/train_cnn.rs); resolves to the last loss.
    pub async fn train(&mut self, steps: u32) -> Result<f32> {
        let params = self.model.parameters();
        let mut last = f32::NAN;
        for _ in 0..steps {
            let per_epoch = self.train.len().div_ceil(BATCH);
            if self.batch == per_epoch {
                self.batch = 0;
                self.epoch += 1;
            }
            let order = webgrad::data::shuffled(self.train.len(), self.epoch);
            let end = ((self.batch + 1) * BATCH).min(self.train.len());
            let batch = self
                .train
                .select(&order[self.batch * BATCH..end])
                .shifted_images(8, 1, self.epoch * 1000 + self.batch as u64);
            self.batch += 1;
            let (x, labels) = batch.tensors(&self.dev);
            let loss = self.logits(&x).cross_entropy(&labels);
            last = match &mut self.scaler {
                Some(scaler) => scaler.minimize(&mut self.opt, &loss, &params).await?,
                None => self.opt.minimize(&loss, &params).await?,
            };
            self.steps += 1;
        }
        Ok(last)
    }

    /// The logits in f32, the activations stored in the trainer's precision.
    fn logits(&self, x: &Tensor) -> Tensor {
        autocast(self.precision, || self.model.forward(x)).to_dtype(DType::F32)
    }

    /// Accuracy on the 359 held-out test images.
    pub async fn test_accuracy(&self) -> Result<f64> {
        let (x, _) = self.test.tensors(&self.dev);
        let logits = read_all(&[&self.logits(&x)]).await?.remove(0);
        Ok(self.test.accuracy(&logits))
    }

    /// Probabilities and saliency for 64 pixels in [0, 1] (an 8×8 image,
    /// row by row, scaled like the data set: on-pixel counts / 16).
    pub async fn predict(&self, pixels: &[f32]) -> Result<Prediction> {
        assert_eq!(pixels.len(), 64, "predict: 64 pixels");
        let x = Tensor::from_vec(&self.dev, pixels.to_vec(), [1, 64]);
        let logits = self.logits(&x);
        let probs = logits.softmax(1);
        let values = read_all(&[&probs]).await?.remove(0);
        let class = webgrad::data::argmax_rows(&values, 10)[0];
        // Reverse mode from the top class's logit to the pixels.
        let top = logits.narrow(1, class..class + 1).sum();
        let saliency = grad(&top, &[&x]);
        let saliency = read_all(&[&saliency[0]]).await?.remove(0);
        Ok(Prediction {
            probabilities: values,
            class,
            saliency,
        })
    }
}
