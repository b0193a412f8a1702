//! Device teardown waits for the other devices of the process to be idle.
//!
//! Why: NVIDIA's Vulkan driver (580.159, an H200) was seen to hang for good
//! in `vkDestroyDevice` when one device of a process was destroyed while
//! another device of the same process, on another thread, was submitting
//! or waiting (two data-parallel replicas on one GPU, one finishing before
//! the other). Submits and waits hold a shared lock; dropping a device's
//! GPU half holds it exclusively, from its `Drop` until its last field is
//! gone. Uncontended, the shared lock costs an atomic operation per submit.

use std::cell::RefCell;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static GPU_USE: RwLock<()> = RwLock::new(());

thread_local! {
    /// The exclusive hold of a teardown under way on this thread.
    static TEARING_DOWN: RefCell<Option<RwLockWriteGuard<'static, ()>>> = const { RefCell::new(None) };
}

/// Held while a device submits work or waits for it.
pub(crate) fn in_use() -> RwLockReadGuard<'static, ()> {
    GPU_USE.read()
}

/// Called first in the GPU half's `Drop`: no other device is in use until
/// [`TeardownDone`] (its last field) is dropped.
pub(crate) fn begin() {
    let guard = GPU_USE.write();
    TEARING_DOWN.with(|t| *t.borrow_mut() = Some(guard));
}

/// The last field of the GPU half: dropped after every wgpu handle.
#[derive(Default)]
pub(crate) struct TeardownDone;

impl Drop for TeardownDone {
    fn drop(&mut self) {
        TEARING_DOWN.with(|t| t.borrow_mut().take());
    }
}
