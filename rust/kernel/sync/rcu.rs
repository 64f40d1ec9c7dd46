// SPDX-License-Identifier: GPL-2.0

//! Read-copy-update: read-side critical sections and RCU-published pointers.
//!
//! C header: [`include/linux/rcupdate.h`](srctree/include/linux/rcupdate.h)

use crate::{
    alloc::{flags::GFP_ATOMIC, KBox},
    bindings,
    types::Opaque,
};
use core::{
    marker::PhantomData,
    ptr,
    sync::atomic::{AtomicPtr, Ordering},
};

/// Evidence that the RCU read-side lock is held on the current CPU.
///
/// References obtained from RCU-protected data live no longer than the guard.
pub struct Guard(PhantomData<*mut ()>);

// Whether `rcu_read_lock` and `rcu_read_unlock` are compiler barriers only: without
// preemptible RCU and preemption counting, `__rcu_read_lock` is a `preempt_disable` that does
// nothing but order the compiler, and without lockdep nothing else is recorded. The guard then
// does the same inline rather than calling out of line for every packet.
#[cfg(not(any(
    CONFIG_PREEMPT_RCU,
    CONFIG_PREEMPT_COUNT,
    CONFIG_DEBUG_LOCK_ALLOC,
    CONFIG_RCU_STRICT_GRACE_PERIOD
)))]
mod read_side {
    use core::sync::atomic::{compiler_fence, Ordering::SeqCst};

    #[inline(always)]
    pub(super) fn lock() {
        compiler_fence(SeqCst);
    }

    #[inline(always)]
    pub(super) fn unlock() {
        compiler_fence(SeqCst);
    }
}

#[cfg(any(
    CONFIG_PREEMPT_RCU,
    CONFIG_PREEMPT_COUNT,
    CONFIG_DEBUG_LOCK_ALLOC,
    CONFIG_RCU_STRICT_GRACE_PERIOD
))]
mod read_side {
    use crate::bindings;

    #[inline(always)]
    pub(super) fn lock() {
        // SAFETY: An FFI call with no additional requirements.
        unsafe { bindings::rcu_read_lock() };
    }

    #[inline(always)]
    pub(super) fn unlock() {
        // SAFETY: Called by `Guard::drop` only, so the lock taken by `lock` is held.
        unsafe { bindings::rcu_read_unlock() };
    }
}

impl Guard {
    /// Enters an RCU read-side critical section.
    #[inline]
    pub fn new() -> Self {
        read_side::lock();
        // INVARIANT: The RCU read-side lock was just acquired above.
        Self(PhantomData)
    }
}

impl Default for Guard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        // By the type invariants, the RCU read-side lock is held by this guard.
        read_side::unlock();
    }
}

/// Acquires the RCU read-side lock.
#[inline]
pub fn read_lock() -> Guard {
    Guard::new()
}

/// Waits until every RCU read-side critical section that started before the call has ended.
///
/// Sleeps: only callable from process context.
pub fn synchronize_rcu() {
    // SAFETY: An FFI call with no additional requirements; `synchronize_rcu` itself checks that
    // the caller may sleep.
    unsafe { bindings::synchronize_rcu() };
}

/// Waits until every callback queued with `call_rcu()` so far has run.
///
/// Sleeps: only callable from process context.
pub fn barrier() {
    // SAFETY: An FFI call with no additional requirements.
    unsafe { bindings::rcu_barrier() };
}

/// An owned, heap-allocated value published to RCU readers.
///
/// Readers use [`RcuBox::get`] under a [`Guard`]; writers replace the whole value with
/// [`RcuBox::replace`], which waits for a grace period before freeing the old one. Writers are
/// expected to be serialised by the caller (for example by a mutex); concurrent writers are still
/// memory safe because the swap is atomic.
///
/// # Invariants
///
/// `ptr` is null or comes from [`KBox::into_raw`] and is owned by this object.
pub struct RcuBox<T> {
    ptr: AtomicPtr<T>,
    _p: PhantomData<KBox<T>>,
}

// SAFETY: The value is only handed out as `&T` to any thread, and dropped by whichever thread
// holds the box, so `T: Send + Sync` is enough.
unsafe impl<T: Send + Sync> Send for RcuBox<T> {}
// SAFETY: As above: shared access only gives `&T`.
unsafe impl<T: Send + Sync> Sync for RcuBox<T> {}

impl<T> RcuBox<T> {
    /// Creates a box publishing `value`, or nothing.
    pub fn new(value: Option<KBox<T>>) -> Self {
        // INVARIANT: The pointer is null or from `KBox::into_raw`.
        Self {
            ptr: AtomicPtr::new(value.map_or(ptr::null_mut(), KBox::into_raw)),
            _p: PhantomData,
        }
    }

    /// Returns the current value, valid until the end of the read-side critical section.
    #[inline]
    pub fn get<'a>(&'a self, _guard: &'a Guard) -> Option<&'a T> {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: By the type invariants `p` is null or a live allocation owned by `self`. It is
        // only freed after a grace period that starts after it was unpublished, and `_guard`
        // proves that a read-side critical section covering `'a` is in progress.
        unsafe { p.as_ref() }
    }

    /// Returns the current value to a writer; `&mut self` excludes concurrent replacement.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        // SAFETY: By the type invariants the pointer is null or owned by `self`, and `&mut self`
        // guarantees exclusive access.
        unsafe { self.ptr.load(Ordering::Relaxed).as_mut() }
    }

    /// Publishes `new`, waits for pre-existing readers, then drops the old value.
    ///
    /// Sleeps: only callable from process context.
    pub fn replace(&self, new: Option<KBox<T>>) {
        if let Some(old) = self.swap(new) {
            synchronize_rcu();
            // SAFETY: `old` came from `KBox::into_raw` (type invariants), the swap made this
            // thread its only owner, and the grace period above ended every reader that could
            // still see it.
            drop(unsafe { KBox::from_raw(old) });
        }
    }

    fn swap(&self, new: Option<KBox<T>>) -> Option<*mut T> {
        let new = new.map_or(ptr::null_mut(), KBox::into_raw);
        let old = self.ptr.swap(new, Ordering::AcqRel);
        (!old.is_null()).then_some(old)
    }
}

impl<T: Send + 'static> RcuBox<T> {
    /// Publishes `new` and drops the old value after a grace period, without waiting
    /// (`call_rcu`). The old value is dropped in softirq context, so its `Drop` must not
    /// sleep. Modules using this must call [`barrier`] before they are unloaded.
    pub fn replace_deferred(&self, new: Option<KBox<T>>) {
        let Some(old) = self.swap(new) else {
            return;
        };
        // SAFETY: `old` came from `KBox::into_raw` and the swap made us its only owner.
        let old = unsafe { KBox::from_raw(old) };
        match KBox::new(Deferred { head: Opaque::uninit(), value: old }, GFP_ATOMIC) {
            Ok(d) => {
                let d = KBox::into_raw(d);
                // SAFETY: `d` is a live allocation whose `head` is ours to hand to `call_rcu`;
                // the callback reclaims it exactly once.
                unsafe { bindings::call_rcu((*d).head.get(), Some(Deferred::<T>::free)) };
            }
            Err(_) => {
                // No memory for the deferral: wait here instead. `old` is dropped after the
                // grace period when this scope ends.
                synchronize_rcu();
            }
        }
    }
}

#[repr(C)]
struct Deferred<T> {
    // Must stay first: the callback finds the object at the address of its `rcu_head`.
    head: Opaque<bindings::callback_head>,
    value: KBox<T>,
}

impl<T> Deferred<T> {
    unsafe extern "C" fn free(head: *mut bindings::callback_head) {
        // CAST: `Deferred` is `repr(C)` with the (transparent) head first.
        // SAFETY: `head` is the one passed to `call_rcu` in `replace_deferred`, from a live
        // `KBox<Deferred<T>>` that nothing else references.
        drop(unsafe { KBox::from_raw(head.cast::<Deferred<T>>()) });
    }
}

impl<T> Drop for RcuBox<T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: `&mut self` means no reader holds a reference obtained through `get`
            // (its lifetime borrows `self`), and the pointer is owned by `self`.
            drop(unsafe { KBox::from_raw(p) });
        }
    }
}
