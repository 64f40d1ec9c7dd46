// SPDX-License-Identifier: GPL-2.0

//! An [`Arc`] that can be set once, from nothing, and read without locks.
//!
//! For a field that other CPUs read while it may still be filled in: readers get `&T` for
//! as long as they borrow the holder, since the value, once set, stays until the holder is
//! dropped.

use crate::sync::{Arc, ArcBorrow};
use core::{
    ptr,
    sync::atomic::{AtomicPtr, Ordering::*},
};

/// An optional [`Arc<T>`] that goes from `None` to `Some` at most once.
///
/// # Invariants
///
/// `ptr` is null or comes from [`Arc::into_raw`] and is owned by this object.
pub struct OnceArc<T> {
    ptr: AtomicPtr<T>,
}

// SAFETY: Holds an `Arc<T>`, which is `Send` when `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for OnceArc<T> {}
// SAFETY: Shared access gives `&T` (or clones of the `Arc`) only.
unsafe impl<T: Send + Sync> Sync for OnceArc<T> {}

impl<T> OnceArc<T> {
    /// A holder of `value`.
    pub fn new(value: Option<Arc<T>>) -> Self {
        // INVARIANT: Null or an owned `Arc`.
        Self { ptr: AtomicPtr::new(value.map_or(ptr::null_mut(), |a| Arc::into_raw(a).cast_mut())) }
    }

    /// The value, if set.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        // SAFETY: By the type invariants a non-null pointer is an owned `Arc`, which stays
        // until `self` is dropped: never replaced once set.
        unsafe { self.ptr.load(Acquire).as_ref() }
    }

    /// A new reference to the value, if set.
    pub fn get_arc(&self) -> Option<Arc<T>> {
        let p = self.ptr.load(Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: As in `get`: a live `Arc` for at least as long as `self` is borrowed.
        Some(unsafe { ArcBorrow::from_raw(p) }.into())
    }

    /// Sets the value unless one is set already (then `value` comes back).
    pub fn set(&self, value: Arc<T>) -> Result<(), Arc<T>> {
        let p = Arc::into_raw(value).cast_mut();
        match self.ptr.compare_exchange(ptr::null_mut(), p, AcqRel, Acquire) {
            // INVARIANT: The `Arc` is owned by `self` now.
            Ok(_) => Ok(()),
            // SAFETY: `p` came from `Arc::into_raw` above and was not stored.
            Err(_) => Err(unsafe { Arc::from_raw(p) }),
        }
    }
}

impl<T> Drop for OnceArc<T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: An owned `Arc` (type invariants), released once, here.
            drop(unsafe { Arc::from_raw(p) });
        }
    }
}
