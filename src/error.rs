//! The one error type for everything that can fail for reasons outside the
//! caller's own code (principle 7 of the design). Mistakes in how a graph is
//! built (shapes that do not broadcast, an axis out of range) panic at the call
//! site instead, with `#[track_caller]`.

/// Result alias used throughout webgrad.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while talking to the GPU.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No GPU adapter was found. The message says how to get one.
    #[error("no GPU adapter found: {0}")]
    NoAdapter(String),
    /// The adapter refused to create a device.
    #[error("could not create a GPU device: {0}")]
    RequestDevice(String),
    /// The device was lost (driver reset, GPU removed, browser tab backgrounded).
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    /// The GPU ran out of memory.
    #[error("the GPU is out of memory: {0}")]
    OutOfMemory(String),
    /// A tensor is larger than one storage binding may be on this device.
    #[error(
        "a tensor of {bytes} bytes exceeds this device's limit of {limit} bytes per storage binding \
         (request the adapter's own limits with DeviceOptions::adapter_limits, or split the tensor)"
    )]
    TooLarge {
        /// The tensor's size.
        bytes: u64,
        /// The device's largest storage binding.
        limit: u64,
    },
    /// Reading a buffer back to the host failed.
    #[error("reading a GPU buffer back failed: {0}")]
    Readback(String),
    /// wgpu reported a validation error (a bug in webgrad: please report it).
    #[error("wgpu validation error: {0}")]
    Validation(String),
    /// An expression could not be parsed: `position` is the 0-based
    /// character offset, `message` says what was expected there.
    #[error("parse error at position {position}: {message}")]
    Parse {
        /// The 0-based character offset.
        position: usize,
        /// What was expected there.
        message: String,
    },
    /// A user's op ([`crate::op`]) was refused: its inputs do not fit its
    /// shape rule, or its kernels break the contract (WGSL that does not
    /// compile, too many bindings, too many workgroups, a loop too long,
    /// an output element left unwritten). `op` is the op's name.
    #[error("op `{op}`: {message}")]
    InvalidOp {
        /// The op's [`name`](crate::op::Family::name).
        op: String,
        /// What is wrong, and where.
        message: String,
    },
    /// A data file is malformed or truncated.
    #[error("bad data file: {0}")]
    Data(String),
    /// A checkpoint could not be written or read, or does not fit the model.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Anomaly detection ([`crate::Device::set_detect_anomaly`]) found the
    /// first op whose output holds a NaN or an infinity; the message names
    /// it, its shape, the element and the ops that made its inputs.
    #[error("anomaly: {0}")]
    Anomaly(String),
    /// An index computed on the GPU (an `argmax` fed to `index_select` or
    /// `embedding`) is out of range for the axis it indexes. The realize
    /// that ran the op reports it; the message names the op, the axis and
    /// the largest offending index. (`IndexTensor::clamp` makes indices
    /// fit instead, where that is what is meant.) The values that realize
    /// computed are marked failed: reading them, or anything made from
    /// them, returns this error again; so does a variable the same realize
    /// updated (create or load it anew).
    #[error("index out of range: {0}")]
    IndexOutOfRange(String),
    /// An op was recorded before an update of a variable it reads, and that
    /// update has since been written: the value it read no longer exists.
    /// Realize reads together with (or before) the updates they precede.
    #[error("stale read: {0}")]
    StaleRead(String),
    /// Realizing these tensors would need more GPU memory at its peak than
    /// the device's budget (`Device::set_memory_budget`) allows, or no
    /// checkpointing policy fits a requested budget; `needed` is the
    /// smallest peak found (checkpointing, `webgrad::checkpoint`, lowers it).
    #[error(
        "a peak of {needed} bytes is needed, over the memory budget of {budget} bytes \
         (checkpoint more of the model with webgrad::checkpoint, or raise the budget)"
    )]
    OutOfBudget {
        /// The smallest peak found.
        needed: u64,
        /// The device's budget.
        budget: u64,
    },
    /// The tensor lives on a reference-only device, which has no GPU.
    #[error("this tensor lives on a reference-only device (no GPU); use webgrad::reference::eval")]
    NoGpu,
    /// Another rank (or local replica) of a data-parallel run failed: a
    /// panic, an error, or its process ended. Every other rank stops with
    /// this error instead of waiting for it (see `webgrad::distributed`).
    #[error("rank {rank} of the data-parallel run failed: {message}")]
    RankFailed {
        /// The rank that failed.
        rank: usize,
        /// What it reported (its panic message or error).
        message: String,
    },
    /// The data-parallel transport could not exchange values (MPI reported
    /// an error, or the ranks disagree on what to exchange).
    #[error("data-parallel transport: {0}")]
    Transport(String),
}

impl Error {
    pub(crate) fn from_wgpu(e: wgpu::Error) -> Self {
        match e {
            wgpu::Error::OutOfMemory { .. } => Error::OutOfMemory(e.to_string()),
            wgpu::Error::Validation { description, .. } => Error::Validation(description),
            wgpu::Error::Internal { description, .. } => Error::Validation(description),
        }
    }
}
