//! Native tensors, devices, layers, models and optimizers can cross
//! threads: a thread per device, or a model served from a multi-threaded
//! program. Checked here at compile time, so that a field that is not
//! thread-safe fails the build rather than a user's. The browser build is
//! single-threaded: its GPU handles are not `Send`, and neither are these
//! types there.

#[allow(dead_code)]
fn send_and_sync<T: Send + Sync>() {}

#[allow(dead_code)]
fn all_public_types_are_send_and_sync() {
    use crate::layers::*;
    use crate::optim::*;
    send_and_sync::<crate::Tensor>();
    send_and_sync::<crate::IndexTensor>();
    send_and_sync::<crate::Device>();
    send_and_sync::<crate::Error>();
    send_and_sync::<Conv2d>();
    send_and_sync::<ConvTranspose2d>();
    send_and_sync::<Linear>();
    send_and_sync::<Mlp>();
    send_and_sync::<BatchNorm2d>();
    send_and_sync::<GroupNorm>();
    send_and_sync::<Sequential>();
    send_and_sync::<Embedding>();
    send_and_sync::<LayerNorm>();
    send_and_sync::<Dropout>();
    send_and_sync::<MultiHeadAttention>();
    send_and_sync::<TransformerBlock>();
    send_and_sync::<crate::models::DigitsCnn>();
    send_and_sync::<crate::models::CharTransformer>();
    send_and_sync::<Adam>();
    send_and_sync::<Sgd>();
    send_and_sync::<GradAccumulator>();
    send_and_sync::<Ema>();
    send_and_sync::<LossScaler>();
    send_and_sync::<crate::data::Dataset>();
    send_and_sync::<crate::profile::Profile>();
}
