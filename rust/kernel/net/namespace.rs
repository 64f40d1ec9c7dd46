// SPDX-License-Identifier: GPL-2.0

//! Network namespaces and per-namespace data.
//!
//! C headers: [`include/net/net_namespace.h`](srctree/include/net/net_namespace.h),
//! [`include/net/netns/generic.h`](srctree/include/net/netns/generic.h)

use crate::{
    alloc::{flags::GFP_KERNEL, KBox},
    bindings,
    error::{from_result, to_result, Error, Result},
    init::{InPlaceInit, PinInit},
    types::Opaque,
};
use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    mem::MaybeUninit,
    pin::Pin,
    ptr,
    sync::atomic::{AtomicBool, Ordering},
};

/// Route type of a unicast address.
pub const RTN_UNICAST: u32 = bindings::RTN_UNICAST;
/// Route type of a local address.
pub const RTN_LOCAL: u32 = bindings::RTN_LOCAL;
/// Route type of a broadcast address.
pub const RTN_BROADCAST: u32 = bindings::RTN_BROADCAST;

/// A network namespace (`struct net`).
///
/// # Invariants
///
/// A `&Net` always refers to a namespace that is alive for the reference's lifetime.
#[repr(transparent)]
pub struct Net(Opaque<bindings::net>);

// SAFETY: `struct net` is designed to be shared between threads; every method takes `&self` and
// only reads fields that are constant while the namespace is alive.
unsafe impl Sync for Net {}
// SAFETY: As above.
unsafe impl Send for Net {}

impl Net {
    /// Borrows a namespace from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a live `struct net` that stays alive for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::net) -> &'a Self {
        // CAST: `Net` is a transparent wrapper of `bindings::net`.
        // SAFETY: The caller guarantees validity for `'a`.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// Returns the raw `struct net` pointer.
    pub fn as_ptr(&self) -> *mut bindings::net {
        self.0.get()
    }

    /// Whether this is the initial namespace.
    pub fn is_init(&self) -> bool {
        // SAFETY: `self` is a live namespace by the type invariants.
        unsafe { bindings::net_is_init(self.as_ptr()) }
    }

    /// Whether the current task has `CAP_NET_ADMIN` in the namespace's owning user namespace.
    pub fn net_admin_capable(&self) -> bool {
        // SAFETY: `self` is a live namespace by the type invariants.
        unsafe { bindings::net_admin_capable(self.as_ptr()) }
    }

    /// The route type of IPv4 address `addr` in this namespace (`inet_addr_type`): one of
    /// [`RTN_UNICAST`], [`RTN_LOCAL`], [`RTN_BROADCAST`], ...
    pub fn inet_addr_type(&self, addr: [u8; 4]) -> u32 {
        // SAFETY: `self` is a live namespace by the type invariants.
        unsafe { bindings::inet_addr_type(self.as_ptr(), u32::from_ne_bytes(addr)) }
    }

    /// Whether a network device called `name` exists in this namespace.
    pub fn has_device(&self, name: &crate::str::CStr) -> bool {
        // SAFETY: `self` is a live namespace; `name` is NUL-terminated.
        unsafe { bindings::net_has_device(self.as_ptr(), name.as_char_ptr()) }
    }

    /// The namespace's `/proc/net` directory.
    pub(crate) fn proc_dir(&self) -> *mut bindings::proc_dir_entry {
        // SAFETY: `self` is a live namespace by the type invariants.
        unsafe { bindings::net_proc_dir(self.as_ptr()) }
    }
}

/// Per-namespace state of a subsystem, created when a namespace appears and dropped when it goes.
pub trait PernetData: Sized + Send + Sync + 'static {
    /// Builds the state of `net`.
    fn init(net: &Net) -> impl PinInit<Self, Error>;

    /// Called once the state is in place (pinned), before it is published.
    fn started(&self, _net: &Net) {}

    /// Called before the state is dropped, when no packet of `net` can reach it any more.
    fn exit(&self, _net: &Net) {}

    /// The `static` [`Pernet`] that registers this type.
    fn pernet() -> &'static Pernet<Self>;
}

/// Registration of per-namespace state (`struct pernet_operations` with `net_generic` storage).
///
/// Meant to be a `static`: `static IPVS: Pernet<MyState> = Pernet::new();`.
pub struct Pernet<T: PernetData> {
    ops: UnsafeCell<bindings::pernet_operations>,
    id: UnsafeCell<u32>,
    registered: AtomicBool,
    _p: PhantomData<T>,
}

// SAFETY: `ops` and `id` are written only by `register` (guarded by `registered`) before the
// kernel or readers see them; afterwards they are only read.
unsafe impl<T: PernetData> Sync for Pernet<T> {}

impl<T: PernetData> Default for Pernet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: PernetData> Pernet<T> {
    /// Creates an unregistered instance.
    pub const fn new() -> Self {
        Self {
            // SAFETY: All-zeroes is a valid `pernet_operations` (null pointers, no callbacks).
            ops: UnsafeCell::new(unsafe { MaybeUninit::zeroed().assume_init() }),
            id: UnsafeCell::new(0),
            registered: AtomicBool::new(false),
            _p: PhantomData,
        }
    }

    /// Registers with the kernel: [`PernetData::init`] runs for every existing and future
    /// namespace. Dropping the returned guard unregisters and drops every namespace's state.
    pub fn register(&'static self) -> Result<PernetRegistration<T>> {
        if self.registered.swap(true, Ordering::AcqRel) {
            return Err(crate::error::code::EBUSY);
        }
        let ops = self.ops.get();
        // SAFETY: `registered` was false, so nothing else accesses `ops` yet; the object is
        // `'static`, as the kernel requires.
        unsafe {
            (*ops).init = Some(Self::init_callback);
            (*ops).exit = Some(Self::exit_callback);
            (*ops).id = self.id.get();
            (*ops).size = core::mem::size_of::<*mut T>();
        }
        // SAFETY: `ops` is fully initialised and lives forever.
        let ret = to_result(unsafe { bindings::register_pernet_subsys(ops) });
        if ret.is_err() {
            self.registered.store(false, Ordering::Release);
        }
        ret.map(|()| PernetRegistration { pernet: self })
    }

    fn slot(&self, net: &Net) -> *mut *mut T {
        // SAFETY: Only called while registered, so `id` was assigned by the kernel and `net`
        // has a slot of `size_of::<*mut T>()` bytes for it, whose address is entry `id` of
        // the namespace's `net_generic` array (as `net_generic` reads it, inline here: this
        // runs for every packet). The array is replaced only after a grace period, and its
        // entry for a registered id never changes; callers are in an RCU read-side critical
        // section or hold a reference that keeps the registration.
        unsafe {
            let gen = core::ptr::read_volatile(core::ptr::addr_of!((*net.as_ptr()).gen_));
            gen.cast::<*mut core::ffi::c_void>()
                .add(*self.id.get() as usize)
                .read()
                .cast::<*mut T>()
        }
    }

    /// Returns the state of `net`, if registered.
    pub fn get<'a>(&self, net: &'a Net) -> Option<&'a T> {
        if !self.registered.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: The slot holds null or a pointer from `init_callback` that stays valid until
        // `exit_callback` runs, which only happens once `net` is dead, after `'a`.
        unsafe { (*self.slot(net)).as_ref() }
    }

    unsafe extern "C" fn init_callback(net: *mut bindings::net) -> i32 {
        from_result(|| {
            // SAFETY: The kernel passes a namespace that is alive during the call.
            let net = unsafe { Net::from_raw(net) };
            let pernet = T::pernet();
            let state = KBox::try_pin_init(T::init(net), GFP_KERNEL)?;
            state.started(net);
            // SAFETY: The state is never moved out of its box: it is only dropped in place.
            let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(state) });
            // SAFETY: The slot belongs to this registration and `net`.
            unsafe { *pernet.slot(net) = raw };
            Ok(0)
        })
    }

    unsafe extern "C" fn exit_callback(net: *mut bindings::net) {
        // SAFETY: The kernel passes a namespace that is alive during the call.
        let net = unsafe { Net::from_raw(net) };
        let pernet = T::pernet();
        let slot = pernet.slot(net);
        // SAFETY: The slot is ours; the kernel calls exit once per successful init.
        let raw = unsafe { ptr::replace(slot, ptr::null_mut()) };
        if !raw.is_null() {
            // SAFETY: `raw` came from `KBox::into_raw` in `init_callback`.
            let state = unsafe { KBox::from_raw(raw) };
            state.exit(net);
            drop(state);
        }
    }
}

/// Unregisters a [`Pernet`] when dropped.
pub struct PernetRegistration<T: PernetData + 'static> {
    pernet: &'static Pernet<T>,
}

impl<T: PernetData + 'static> Drop for PernetRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: Registered in `Pernet::register`; unregistering runs the exit callback for
        // every namespace.
        unsafe { bindings::unregister_pernet_subsys(self.pernet.ops.get()) };
        self.pernet.registered.store(false, Ordering::Release);
    }
}
