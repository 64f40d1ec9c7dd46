// SPDX-License-Identifier: GPL-2.0

//! Read-copy-update: read-side critical sections and RCU-published pointers.
//!
//! C header: [`include/linux/rcupdate.h`](srctree/include/linux/rcupdate.h)

use crate::{
    alloc::{AllocError, Flags, KBox},
    bindings,
    types::Opaque,
};
use core::{
    marker::PhantomData,
    mem::ManuallyDrop,
    ops::{Deref, DerefMut},
    ptr,
    sync::atomic::{AtomicPtr, Ordering},
};

/// Evidence that the RCU read-side lock is held on the current CPU.
///
/// References obtained from RCU-protected data live no longer than the guard.
pub struct Guard(PhantomData<*mut ()>);

impl Guard {
    /// Enters an RCU read-side critical section.
    #[inline]
    pub fn new() -> Self {
        // SAFETY: An FFI call with no additional requirements. The C function (not an inline
        // copy of it) keeps lockdep's and RCU's own debug checks of the read side.
        unsafe { bindings::rcu_read_lock() };
        // INVARIANT: The RCU read-side lock was just acquired above.
        Self(PhantomData)
    }

    /// Leaves the read-side critical section for a moment to let the scheduler run, then
    /// enters it again (`cond_resched_rcu`), for long walks in process context.
    ///
    /// `&mut self` ends every borrow of RCU-protected data obtained under this guard: the
    /// caller must find its place again afterwards (for example by a bucket index).
    /// Only callable where sleeping is allowed outside the critical section.
    #[inline]
    pub fn cond_resched(&mut self) {
        // SAFETY: By the type invariants the lock is held; no reference derived from it
        // survives (the exclusive borrow), so it may be released and taken again.
        unsafe {
            bindings::rcu_read_unlock();
            bindings::cond_resched();
            bindings::rcu_read_lock();
        }
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
        // SAFETY: By the type invariants, the RCU read-side lock is held by this guard.
        unsafe { bindings::rcu_read_unlock() };
    }
}

/// A read-side critical section the caller of Rust code entered already (C that calls it
/// with the RCU read lock held, as netfilter around its hook functions): a [`Guard`] that is
/// neither taken nor released here.
pub struct Held(ManuallyDrop<Guard>);

impl Held {
    /// Stands for the read-side critical section the caller holds.
    ///
    /// # Safety
    ///
    /// The RCU read-side lock must be held on this CPU for as long as the value lives.
    #[inline(always)]
    pub unsafe fn new() -> Self {
        // INVARIANT: The caller holds the lock for the guard's life; never dropped, it does
        // not release it.
        Self(ManuallyDrop::new(Guard(PhantomData)))
    }
}

impl Deref for Held {
    type Target = Guard;

    #[inline(always)]
    fn deref(&self) -> &Guard {
        &self.0
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

/// A value prepared for publication in an [`RcuBox`]: the value and the `rcu_head` that
/// frees it after a grace period, in one allocation (as C embeds `struct rcu_head` in the
/// object), so that replacing a published value never allocates or waits.
#[repr(C)]
pub struct RcuNode<T> {
    // Must stay first: the callback finds the node at the address of its `rcu_head`.
    head: Opaque<bindings::callback_head>,
    value: T,
}

impl<T> RcuNode<T> {
    /// Allocates a node holding `value`.
    pub fn new(value: T, flags: Flags) -> Result<KBox<Self>, AllocError> {
        KBox::new(
            Self {
                head: Opaque::uninit(),
                value,
            },
            flags,
        )
    }

    /// Takes the value back out of an unpublished node.
    pub fn into_inner(node: KBox<Self>) -> T {
        let node = KBox::into_inner(node);
        node.value
    }

    unsafe extern "C" fn free(head: *mut bindings::callback_head) {
        // CAST: `RcuNode` is `repr(C)` with the (transparent) head first.
        // SAFETY: `head` is the one passed to `call_rcu` by `RcuBox::replace_deferred` or by
        // `Retired`'s drop, from a `KBox<RcuNode<T>>` that nothing references any more; the
        // callback runs once.
        drop(unsafe { KBox::from_raw(head.cast::<RcuNode<T>>()) });
    }
}

impl<T> Deref for RcuNode<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for RcuNode<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

/// An owned, heap-allocated value published to RCU readers.
///
/// Readers use [`RcuBox::get`] under a [`Guard`]; writers replace the whole value with
/// [`RcuBox::replace`], which waits for a grace period before freeing the old one, or with
/// [`RcuBox::replace_deferred`], which frees it from an RCU callback. Values are built as
/// [`RcuNode`]s, so neither needs memory. Writers are expected to be serialised by the caller
/// (for example by a mutex); concurrent writers are still memory safe because the swap is
/// atomic.
///
/// # Invariants
///
/// `ptr` is null or comes from [`KBox::into_raw`] of a `KBox<RcuNode<T>>` and is owned by this
/// object.
pub struct RcuBox<T> {
    ptr: AtomicPtr<RcuNode<T>>,
    _p: PhantomData<KBox<RcuNode<T>>>,
}

// SAFETY: The value is only handed out as `&T` to any thread, and dropped by whichever thread
// holds the box (or an RCU callback), so `T: Send + Sync` is enough.
unsafe impl<T: Send + Sync> Send for RcuBox<T> {}
// SAFETY: As above: shared access only gives `&T`.
unsafe impl<T: Send + Sync> Sync for RcuBox<T> {}

impl<T> RcuBox<T> {
    /// Creates a box publishing `value`, or nothing.
    pub fn new(value: Option<KBox<RcuNode<T>>>) -> Self {
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
        unsafe { p.as_ref() }.map(|n| &n.value)
    }

    /// Returns the current value to a writer; `&mut self` excludes concurrent replacement.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        // SAFETY: By the type invariants the pointer is null or owned by `self`, and `&mut self`
        // guarantees exclusive access.
        unsafe { self.ptr.load(Ordering::Relaxed).as_mut() }.map(|n| &mut n.value)
    }

    /// Publishes `new`, waits for pre-existing readers, then drops the old value.
    ///
    /// Sleeps: only callable from process context.
    pub fn replace(&self, new: Option<KBox<RcuNode<T>>>) {
        if let Some(old) = self.swap(new) {
            synchronize_rcu();
            // SAFETY: `old` came from `KBox::into_raw` (type invariants), the swap made this
            // thread its only owner, and the grace period above ended every reader that could
            // still see it.
            drop(unsafe { KBox::from_raw(old) });
        }
    }

    fn swap(&self, new: Option<KBox<RcuNode<T>>>) -> Option<*mut RcuNode<T>> {
        let new = new.map_or(ptr::null_mut(), KBox::into_raw);
        let old = self.ptr.swap(new, Ordering::AcqRel);
        (!old.is_null()).then_some(old)
    }
}

impl<T: Send + 'static> RcuBox<T> {
    /// Publishes `new` and drops the old value after a grace period, without waiting or
    /// allocating (`call_rcu` on the node's own `rcu_head`): callable in any context. The
    /// old value is dropped in softirq context, so its `Drop` must not sleep. Modules using
    /// this must call [`barrier`] before they are unloaded.
    pub fn replace_deferred(&self, new: Option<KBox<RcuNode<T>>>) {
        let Some(old) = self.swap(new) else {
            return;
        };
        // SAFETY: `old` is a live `RcuNode<T>` from `KBox::into_raw` that the swap made ours;
        // its `head` is handed to `call_rcu` once, and the callback reclaims the node exactly
        // once, after every reader that could still see it is done.
        unsafe { bindings::call_rcu((*old).head.get(), Some(RcuNode::<T>::free)) };
    }
}

impl<T: Send + Sync + 'static> RcuBox<T> {
    /// Publishes `new` and hands the old value back as [`Retired`], without waiting: the
    /// readers that may still see it can go on, and the caller can read it at once and own
    /// it (or drop it) once a grace period has elapsed, usually long before it asks. This
    /// starts a grace period if none is under way.
    pub fn retire(&self, new: Option<KBox<RcuNode<T>>>) -> Option<Retired<T>> {
        let old = self.swap(new)?;
        // SAFETY: An FFI call with no additional requirements.
        let gp = unsafe { bindings::start_poll_synchronize_rcu() };
        // INVARIANT: `old` came from `KBox::into_raw` and the swap made it ours; `gp` was taken
        // after it was unpublished.
        Some(Retired { node: old, gp })
    }
}

/// A value unpublished from an [`RcuBox`] by [`RcuBox::retire`], which readers that found it
/// before may still be reading until a grace period ends: shared until then, owned after.
///
/// Dropped before its grace period ended, it is freed from an RCU callback (in softirq
/// context); dropped after, at once. Modules using it must call [`barrier`] before they are
/// unloaded.
///
/// # Invariants
///
/// `node` comes from [`KBox::into_raw`] of a `KBox<RcuNode<T>>`, unpublished, and owned by
/// this object; `gp` is a grace-period cookie of `start_poll_synchronize_rcu` taken after it
/// was unpublished.
pub struct Retired<T: Send + Sync + 'static> {
    node: *mut RcuNode<T>,
    gp: usize,
}

// SAFETY: Shared access only gives `&T`, as readers have; the value is dropped by whichever
// thread owns this (or an RCU callback), so `T: Send + Sync` is enough.
unsafe impl<T: Send + Sync + 'static> Send for Retired<T> {}
// SAFETY: As above.
unsafe impl<T: Send + Sync + 'static> Sync for Retired<T> {}

impl<T: Send + Sync + 'static> Retired<T> {
    /// The value, shared with the readers that may still be reading it.
    pub fn get(&self) -> &T {
        // SAFETY: By the type invariants `node` is live and owned by `self`, so it stays
        // allocated for as long as `self` is borrowed; readers only read it.
        unsafe { &(*self.node).value }
    }

    /// Whether the grace period has elapsed (nothing but its owner can see the value).
    pub fn elapsed(&self) -> bool {
        // SAFETY: An FFI call with no additional requirements.
        unsafe { bindings::poll_state_synchronize_rcu(self.gp) }
    }

    /// The value, once every reader that could see it is done: waits for the grace period
    /// unless it has elapsed already.
    ///
    /// May sleep: only callable from process context.
    pub fn into_inner(self) -> T {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: An FFI call with no additional requirements; it checks that the caller may
        // sleep when it has to wait.
        unsafe { bindings::cond_synchronize_rcu(this.gp) };
        // SAFETY: `node` came from `KBox::into_raw` and is owned by `this`, which is not
        // dropped; the grace period after its unpublication has ended, so no reader is left.
        RcuNode::into_inner(unsafe { KBox::from_raw(this.node) })
    }
}

impl<T: Send + Sync + 'static> Drop for Retired<T> {
    fn drop(&mut self) {
        if self.elapsed() {
            // SAFETY: Owned (type invariants) and no reader is left: the grace period ended.
            drop(unsafe { KBox::from_raw(self.node) });
        } else {
            // SAFETY: The node is owned and unpublished; its `head` is handed to `call_rcu`
            // once, and the callback frees it once every reader that could see it is done.
            unsafe { bindings::call_rcu((*self.node).head.get(), Some(RcuNode::<T>::free)) };
        }
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
