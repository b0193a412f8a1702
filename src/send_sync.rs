//! [`SendSync`]: `Send + Sync` on native targets, nothing in the browser.

/// `Send + Sync` natively, so that what a graph holds (an op, a derivative
/// rule, a checkpointed function) can cross threads with its tensors; no
/// bound at all in the browser build, which is single-threaded and whose
/// GPU handles are not `Send`. A closure given to [`crate::custom_vjp`],
/// [`crate::custom_jvp`] or [`crate::checkpoint`], and a user's
/// [`crate::op::Family`], must be `SendSync`: natively, it may capture only
/// thread-safe values.
#[cfg(not(target_arch = "wasm32"))]
pub trait SendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> SendSync for T {}

/// `Send + Sync` natively, nothing in the browser build (see the native
/// documentation).
#[cfg(target_arch = "wasm32")]
pub trait SendSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> SendSync for T {}
