// SPDX-License-Identifier: GPL-2.0

//! System memory figures.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h) (`si_meminfo`)

use crate::bindings;

/// Free and buffer memory, in pages (`freeram + bufferram` of `si_meminfo`).
pub fn free_and_buffer_pages() -> usize {
    // SAFETY: All-zeroes is a valid `sysinfo`, a plain C structure of integers.
    let mut i: bindings::sysinfo = unsafe { core::mem::zeroed() };
    // SAFETY: `si_meminfo` only fills in the structure it is given.
    unsafe { bindings::si_meminfo(&mut i) };
    (i.freeram as usize).wrapping_add(i.bufferram as usize)
}

/// Pages beyond the high watermarks of the zones usable for buffers (`nr_free_buffer_pages`),
/// the figure subsystems size their default queue limits by.
pub fn free_buffer_pages() -> u64 {
    // SAFETY: An FFI call with no additional requirements.
    (unsafe { bindings::nr_free_buffer_pages() }) as u64
}
