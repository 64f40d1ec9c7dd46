// SPDX-License-Identifier: GPL-2.0

//! Loading modules on demand.
//!
//! C header: [`include/linux/kmod.h`](srctree/include/linux/kmod.h)

use crate::{bindings, error::to_result, error::Result, str::CStr};

/// Asks user space to load the module called `name` and waits for it (`request_module`).
///
/// Sleeps. Success means `modprobe` ran, not that the module provides what was wanted.
pub fn request_module(name: &CStr) -> Result {
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    to_result(unsafe { bindings::request_module_name(name.as_char_ptr()) })
}

/// Takes a reference on `module` so that it cannot be unloaded; false if it is going away.
///
/// # Safety
///
/// `module` must be null (built-in code) or point to a module that is live or still being
/// unloaded.
pub unsafe fn try_module_get(module: *mut bindings::module) -> bool {
    // SAFETY: Guaranteed by the caller.
    unsafe { bindings::try_module_get(module) }
}

/// Drops a reference taken with [`try_module_get`].
///
/// # Safety
///
/// The caller must own a reference on `module` taken with [`try_module_get`].
pub unsafe fn module_put(module: *mut bindings::module) {
    // SAFETY: Guaranteed by the caller.
    unsafe { bindings::module_put(module) }
}
