// SPDX-License-Identifier: GPL-2.0

//! Kernel timers (`struct timer_list`).
//!
//! C header: [`include/linux/timer.h`](srctree/include/linux/timer.h)

use crate::{bindings, init::PinInit, pin_init, types::Opaque};
use macros::{pin_data, pinned_drop};

/// Returns the 64-bit jiffies counter.
#[cfg(CONFIG_64BIT)]
#[inline]
pub fn jiffies_64() -> u64 {
    // SAFETY: `jiffies_64` is a valid, aligned kernel variable that lives forever; on a 64-bit
    // architecture a load of it cannot tear (`get_jiffies_64` is a plain read there too).
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(bindings::jiffies_64)) }
}

/// Returns the 64-bit jiffies counter.
#[cfg(not(CONFIG_64BIT))]
#[inline]
pub fn jiffies_64() -> u64 {
    // SAFETY: An FFI call with no additional requirements.
    unsafe { bindings::get_jiffies_64() }
}

/// The function a [`Timer`] runs when it fires, in softirq context.
pub trait TimerCallback: Sized + Send + Sync {
    /// Runs when `timer` fires; may re-arm it.
    fn run(timer: &Timer<Self>);
}

/// A timer that carries its callback's data.
///
/// Dropping it shuts it down and waits for a running callback (`timer_shutdown_sync`), after
/// which re-arming from the callback is a no-op.
#[repr(C)]
#[pin_data(PinnedDrop)]
pub struct Timer<T: TimerCallback> {
    // Must stay first: the callback finds `Self` at the address of the `timer_list`.
    #[pin]
    timer: Opaque<bindings::timer_list>,
    data: T,
}

// SAFETY: The timer may fire on any CPU; `T` is `Send + Sync`.
unsafe impl<T: TimerCallback> Send for Timer<T> {}
// SAFETY: All methods taking `&self` are safe to call concurrently (the timer API locks).
unsafe impl<T: TimerCallback> Sync for Timer<T> {}

impl<T: TimerCallback> Timer<T> {
    /// Creates an unarmed timer.
    pub fn new(data: T) -> impl PinInit<Self> {
        pin_init!(Self {
            timer <- Opaque::ffi_init(|slot: *mut bindings::timer_list| {
                // SAFETY: `slot` is valid for writes and pinned.
                unsafe { bindings::timer_setup(slot, Some(Self::callback), 0) }
            }),
            data,
        })
    }

    /// The data the callback works on.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// Arms (or re-arms) the timer to fire at `expires` jiffies.
    pub fn schedule_at(&self, expires: u64) {
        // SAFETY: The timer was set up in `new` and is pinned.
        unsafe { bindings::mod_timer(self.timer.get(), expires as _) };
    }

    /// Arms (or re-arms) the timer to fire after `delay` jiffies.
    pub fn schedule_after(&self, delay: u64) {
        self.schedule_at(jiffies_64().wrapping_add(delay));
    }

    unsafe extern "C" fn callback(t: *mut bindings::timer_list) {
        // CAST: `Self` is `repr(C)` with the (transparent) `timer_list` as its first field.
        let this = t.cast::<Self>();
        // SAFETY: The timer is only armed while `Self` is alive: `drop` shuts it down first.
        T::run(unsafe { &*this });
    }
}

#[pinned_drop]
impl<T: TimerCallback> PinnedDrop for Timer<T> {
    fn drop(self: core::pin::Pin<&mut Self>) {
        // SAFETY: The timer was set up in `new`; shutting down waits for the callback.
        unsafe { bindings::timer_shutdown_sync(self.timer.get()) };
    }
}
