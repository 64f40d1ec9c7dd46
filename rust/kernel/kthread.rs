// SPDX-License-Identifier: GPL-2.0

//! Kernel threads.
//!
//! C header: [`include/linux/kthread.h`](srctree/include/linux/kthread.h)

use crate::{
    bindings,
    error::{from_err_ptr, Result},
    str::CStr,
    sync::Arc,
};
use core::{ffi::c_void, marker::PhantomData, ptr::NonNull};

/// What a thread's function is started with: the shared data and the function. Boxed by
/// [`KThread`], which outlives the thread.
struct Start<T> {
    data: Arc<T>,
    f: fn(&Ctx, &T),
}

/// A running kernel thread executing `f(ctx, &data)`.
///
/// Dropping the handle (or [`KThread::stop`]) asks the thread to stop (`kthread_stop`) and waits
/// until it has returned, so the thread cannot outlive its handle; keep the handle in state that
/// is torn down before the module is (per-namespace state, module data), and never leak it.
/// Dropping it sleeps: process context only, and not from the thread itself.
pub struct KThread<T: Send + Sync + 'static> {
    /// The thread, with a reference held (`get_task_struct`).
    task: NonNull<bindings::task_struct>,
    /// Read by the thread until it returns.
    start: crate::alloc::KBox<Start<T>>,
}

// SAFETY: The handle only stops the thread and drops `Arc<T>`, with `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for KThread<T> {}
// SAFETY: `&KThread` allows nothing but reading the data.
unsafe impl<T: Send + Sync> Sync for KThread<T> {}

/// Given to a thread's function: what only a kernel thread may ask (`kthread_should_stop`).
pub struct Ctx {
    _not_send: PhantomData<*mut ()>,
}

impl Ctx {
    /// Whether the thread was asked to stop; its function should then return soon.
    pub fn should_stop(&self) -> bool {
        // SAFETY: `Ctx` only exists on a thread started by `KThread::run`.
        unsafe { bindings::kthread_should_stop() }
    }

    /// Sleeps for at most `timeout` jiffies, or not at all if `cond` holds; returns early when
    /// woken ([`crate::task::Task::wake_up`], a condition variable's wait queue does not count)
    /// or asked to stop. The task state is set before `cond` is evaluated, so a wake-up that
    /// follows a false `cond` is never lost. `cond` must not sleep.
    pub fn sleep_unless<C: Fn() -> bool>(&self, cond: &C, timeout: u64) {
        unsafe extern "C" fn call<C: Fn() -> bool>(arg: *const c_void) -> bool {
            // SAFETY: `arg` is the `&C` passed below, live for the duration of the call.
            let c = unsafe { &*arg.cast::<C>() };
            c()
        }
        let timeout = timeout.min(::ffi::c_long::MAX as u64) as ::ffi::c_long;
        // SAFETY: `call::<C>` reads `cond` only during this call, where it is borrowed; the
        // helper runs in this kernel thread (a `Ctx` exists).
        unsafe {
            bindings::kthread_sleep_unless(Some(call::<C>), (cond as *const C).cast(), timeout)
        };
    }
}

impl<T: Send + Sync + 'static> KThread<T> {
    /// Starts a thread named `name` that runs `f(ctx, &data)`.
    ///
    /// `f` should return once [`Ctx::should_stop`] is true; it may return earlier.
    pub fn run(data: Arc<T>, f: fn(&Ctx, &T), name: &CStr) -> Result<Self> {
        unsafe extern "C" fn trampoline<T: Send + Sync + 'static>(p: *mut c_void) -> i32 {
            // SAFETY: `p` is the `Start<T>` boxed in the handle, which lives until
            // `kthread_stop` has returned, that is until this function has returned.
            let start = unsafe { &*p.cast::<Start<T>>() };
            let ctx = Ctx { _not_send: PhantomData };
            (start.f)(&ctx, &start.data);
            0
        }
        let start = crate::alloc::KBox::new(Start { data, f }, crate::alloc::flags::GFP_KERNEL)?;
        let p = (&*start as *const Start<T>).cast_mut().cast::<c_void>();
        // SAFETY: `trampoline::<T>` matches the thread function type and only reads `p`,
        // which stays valid as explained there; `name` is NUL-terminated.
        let task = from_err_ptr(unsafe {
            bindings::kthread_run_get(Some(trampoline::<T>), p, name.as_char_ptr())
        })?;
        let task = NonNull::new(task).ok_or(crate::error::code::ENOMEM)?;
        Ok(Self { task, start })
    }

    /// The data the thread was started with.
    pub fn data(&self) -> &Arc<T> {
        &self.start.data
    }

    /// Wakes the thread if it sleeps in [`Ctx::sleep_unless`] (`wake_up_process`); any
    /// context.
    pub fn wake(&self) {
        // SAFETY: We hold a reference on the task.
        unsafe { bindings::wake_up_process(self.task.as_ptr()) };
    }

    /// Asks the thread to stop and waits until its function has returned.
    pub fn stop(self) {
        drop(self);
    }
}

impl<T: Send + Sync + 'static> Drop for KThread<T> {
    fn drop(&mut self) {
        // SAFETY: We hold a reference on the task, so it is valid even if the thread already
        // returned; `kthread_stop` waits for the thread function to have returned, after which
        // `start` is no longer used and the reference can be dropped.
        unsafe {
            bindings::kthread_stop(self.task.as_ptr());
            bindings::put_task_struct(self.task.as_ptr());
        }
    }
}
