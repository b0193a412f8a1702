//! The interior mutability of graph nodes, made thread-safe so that
//! tensors are `Send` and `Sync`: `RefCell`'s interface over a read-write
//! lock, and `Cell`'s over atomics.
//!
//! A node's mutable parts (its inputs, its value, its counts) change during
//! a realize, which holds its device's lock, or when a tensor handle is
//! made or dropped. The locks are never held across a call into user code,
//! so they cannot deadlock on each other; reads take the lock recursively,
//! as `RefCell` allows several shared borrows at once.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `RefCell`'s `borrow` / `borrow_mut` over a lock: `Sync` where `T` is
/// `Send + Sync`.
#[derive(Default)]
pub(crate) struct SyncCell<T>(RwLock<T>);

impl<T> SyncCell<T> {
    pub fn new(value: T) -> SyncCell<T> {
        SyncCell(RwLock::new(value))
    }

    /// A shared view; several may be held at once on one thread (the read
    /// is recursive: it does not wait behind a writer that is waiting).
    pub fn borrow(&self) -> RwLockReadGuard<'_, T> {
        self.0.read_recursive()
    }

    pub fn borrow_mut(&self) -> RwLockWriteGuard<'_, T> {
        self.0.write()
    }

    pub fn replace(&self, value: T) -> T {
        std::mem::replace(&mut *self.0.write(), value)
    }

    pub fn take(&self) -> T
    where
        T: Default,
    {
        self.replace(T::default())
    }

    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }
}

/// A count (`Cell<usize>`'s interface, and atomic steps).
#[derive(Default)]
pub(crate) struct SyncCount(AtomicUsize);

impl SyncCount {
    pub fn new(value: usize) -> SyncCount {
        SyncCount(AtomicUsize::new(value))
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    pub fn increment(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }

    pub fn decrement(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A flag (`Cell<bool>`'s interface).
#[derive(Default)]
pub(crate) struct SyncFlag(AtomicBool);

impl SyncFlag {
    pub fn new(value: bool) -> SyncFlag {
        SyncFlag(AtomicBool::new(value))
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn set(&self, value: bool) {
        self.0.store(value, Ordering::Release)
    }
}

/// A node id (`Cell<u64>`'s interface).
#[derive(Default)]
pub(crate) struct SyncId(AtomicU64);

impl SyncId {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Release)
    }
}
