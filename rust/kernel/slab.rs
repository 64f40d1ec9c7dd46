// SPDX-License-Identifier: GPL-2.0

//! Slab caches of fixed-size objects (`struct kmem_cache`).
//!
//! C header: [`include/linux/slab.h`](srctree/include/linux/slab.h)

use crate::{
    alloc::{AllocError, Flags},
    bindings,
    error::{code::ENOMEM, Result},
    str::CStr,
};
use core::{marker::PhantomData, ptr::NonNull};

/// A slab cache holding values of type `T`.
///
/// # Invariants
///
/// `cache` is a live cache whose objects have `T`'s size and alignment.
pub struct KmemCache<T> {
    cache: NonNull<bindings::kmem_cache>,
    _p: PhantomData<T>,
}

// SAFETY: Slab caches may be used from any thread; values sent through them must be `Send`.
unsafe impl<T: Send> Send for KmemCache<T> {}
// SAFETY: The slab allocator locks internally.
unsafe impl<T: Send> Sync for KmemCache<T> {}

impl<T> KmemCache<T> {
    /// Creates a cache named `name` (shown in `/proc/slabinfo`).
    pub fn new(name: &'static CStr, flags: bindings::slab_flags_t) -> Result<Self> {
        // SAFETY: All-zeroes is the default `kmem_cache_args`.
        let mut args: bindings::kmem_cache_args = unsafe { core::mem::zeroed() };
        args.align = core::mem::align_of::<T>() as u32;
        // SAFETY: `name` is a static string; `args` is valid for the call.
        let cache = unsafe {
            bindings::__kmem_cache_create_args(
                name.as_char_ptr(),
                core::mem::size_of::<T>() as u32,
                &mut args,
                flags,
            )
        };
        // INVARIANT: The cache was created with `T`'s layout.
        Ok(Self {
            cache: NonNull::new(cache).ok_or(ENOMEM)?,
            _p: PhantomData,
        })
    }

    /// Allocates an object and moves `value` into it.
    pub fn alloc(&self, value: T, flags: Flags) -> Result<NonNull<T>, AllocError> {
        // SAFETY: The cache is live by the type invariants.
        let p = unsafe { bindings::kmem_cache_alloc_noprof(self.cache.as_ptr(), flags.as_raw()) };
        let p = NonNull::new(p.cast::<T>()).ok_or(AllocError)?;
        // SAFETY: `p` is a fresh object with `T`'s size and alignment.
        unsafe { p.as_ptr().write(value) };
        Ok(p)
    }

    /// Allocates an object and moves `value` into it; on failure gives `value` back.
    pub fn alloc_or_return(&self, value: T, flags: Flags) -> Result<NonNull<T>, T> {
        // SAFETY: The cache is live by the type invariants.
        let p = unsafe { bindings::kmem_cache_alloc_noprof(self.cache.as_ptr(), flags.as_raw()) };
        let Some(p) = NonNull::new(p.cast::<T>()) else {
            return Err(value);
        };
        // SAFETY: `p` is a fresh object with `T`'s size and alignment.
        unsafe { p.as_ptr().write(value) };
        Ok(p)
    }

    /// The C cache, for code that frees its objects itself (RCU callbacks).
    pub fn as_raw(&self) -> *mut bindings::kmem_cache {
        self.cache.as_ptr()
    }

    /// Drops the value and returns its memory to the cache.
    ///
    /// # Safety
    ///
    /// `p` must come from [`Self::alloc`] on this cache, and nothing may use it afterwards.
    pub unsafe fn free(&self, p: NonNull<T>) {
        // SAFETY: The caller guarantees `p` holds a live `T` that is no longer used.
        unsafe {
            core::ptr::drop_in_place(p.as_ptr());
            bindings::kmem_cache_free(self.cache.as_ptr(), p.as_ptr().cast());
        }
    }
}

impl<T> Drop for KmemCache<T> {
    fn drop(&mut self) {
        // SAFETY: The cache is live; objects left over are reported by the slab allocator.
        unsafe { bindings::kmem_cache_destroy(self.cache.as_ptr()) };
    }
}
