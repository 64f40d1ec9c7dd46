// SPDX-License-Identifier: GPL-2.0

//! Network namespaces and per-namespace data.
//!
//! C headers: [`include/net/net_namespace.h`](srctree/include/net/net_namespace.h),
//! [`include/net/netns/generic.h`](srctree/include/net/netns/generic.h)

use crate::{
    alloc::{flags::GFP_KERNEL, KBox, KVec},
    bindings,
    error::{from_result, to_result, Error, Result},
    init::{InPlaceInit, PinInit},
    pin_init, try_pin_init,
    sync::Mutex,
    types::Opaque,
};
use macros::pin_data;
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

    /// Whether the namespace belongs to the initial user namespace (rather than to one an
    /// unprivileged user created).
    pub fn owned_by_init_user_ns(&self) -> bool {
        // SAFETY: `self` is a live namespace by the type invariants.
        unsafe { bindings::net_owned_by_init_user_ns(self.as_ptr()) }
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

    /// Turns on IPv6 reassembly by netfilter in this namespace (`nf_defrag_ipv6_enable`);
    /// each success is undone by one [`Self::nf_defrag_ipv6_disable`]. Inline: the function
    /// is in the `nf_defrag_ipv6` module, which the caller's module then depends on.
    #[inline]
    pub fn nf_defrag_ipv6_enable(&self) -> crate::error::Result {
        // SAFETY: `self` is a live namespace by the type invariants.
        crate::error::to_result(unsafe { bindings::nf_defrag_ipv6_enable(self.as_ptr()) })
    }

    /// Undoes one successful [`Self::nf_defrag_ipv6_enable`].
    #[inline]
    pub fn nf_defrag_ipv6_disable(&self) {
        // SAFETY: `self` is a live namespace by the type invariants.
        unsafe { bindings::nf_defrag_ipv6_disable(self.as_ptr()) }
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

/// The kind of IPv6 address `addr` is (`__ipv6_addr_type`): a mask of `IPV6_ADDR_*` bits
/// (unicast, multicast, loopback, link-local, ...).
pub fn ipv6_addr_type(addr: &[u8; 16]) -> u32 {
    // SAFETY: `addr` is 16 readable bytes, the layout of `struct in6_addr`.
    unsafe { bindings::__ipv6_addr_type(addr.as_ptr().cast()) as u32 }
}

/// Whether IPv6 is enabled (not disabled with `ipv6.disable=1`).
pub fn ipv6_mod_enabled() -> bool {
    // SAFETY: Reads a global flag.
    unsafe { bindings::ipv6_mod_enabled() }
}

/// What a [`NetdevNotifier`] tells its user.
pub trait NetdevEvents: 'static {
    /// A network device of `net` went down (`NETDEV_DOWN`) or is being unregistered
    /// (`NETDEV_UNREGISTER`): whatever holds routes through it must let them go, or the
    /// device cannot go away. Called in process context with the RTNL held.
    fn device_going(net: &Net);
}

/// A registered netdevice notifier (`register_netdevice_notifier`) calling
/// [`NetdevEvents::device_going`] of `T`; dropping it unregisters it (which replays the
/// down and unregister events of every existing device, so `T` must still work then).
pub struct NetdevNotifier {
    nb: crate::alloc::KBox<bindings::notifier_block>,
}

// SAFETY: The notifier block is only touched by the notifier chain, under its own locking.
unsafe impl Send for NetdevNotifier {}
// SAFETY: No `&self` method.
unsafe impl Sync for NetdevNotifier {}

impl NetdevNotifier {
    /// Registers the notifier of `T`.
    pub fn register<T: NetdevEvents>() -> crate::error::Result<Self> {
        // SAFETY: All-zeroes is a valid, unlinked `notifier_block`.
        let mut nb: crate::alloc::KBox<bindings::notifier_block> =
            crate::alloc::KBox::new(unsafe { core::mem::zeroed() }, crate::alloc::flags::GFP_KERNEL)?;
        nb.notifier_call = Some(Self::call::<T>);
        // SAFETY: `nb` is a valid block at a stable (boxed) address until it is unregistered
        // in `drop`.
        crate::error::to_result(unsafe { bindings::register_netdevice_notifier(&mut *nb) })?;
        Ok(Self { nb })
    }

    unsafe extern "C" fn call<T: NetdevEvents>(
        _nb: *mut bindings::notifier_block,
        event: ::ffi::c_ulong,
        ptr: *mut ::ffi::c_void,
    ) -> ::ffi::c_int {
        if event == bindings::netdev_cmd_NETDEV_DOWN as ::ffi::c_ulong
            || event == bindings::netdev_cmd_NETDEV_UNREGISTER as ::ffi::c_ulong
        {
            // SAFETY: For netdevice events `ptr` is a `netdev_notifier_info` of a live device.
            let net = unsafe { bindings::netdev_notifier_net(ptr) };
            if !net.is_null() {
                // SAFETY: The device's namespace is alive while the device is in it, which it
                // is for the whole call.
                T::device_going(unsafe { Net::from_raw(net) });
            }
        }
        bindings::NOTIFY_DONE as ::ffi::c_int
    }
}

impl Drop for NetdevNotifier {
    fn drop(&mut self) {
        // SAFETY: Registered in `register`; unregistering waits for running callbacks.
        unsafe { bindings::unregister_netdevice_notifier(&mut *self.nb) };
    }
}

/// Per-namespace state of a subsystem, created when a namespace appears and dropped when it goes.
pub trait PernetData: Sized + Send + Sync + 'static {
    /// Builds the state of `net`. Registrations in the namespace that reach the state (hooks,
    /// sysctl tables, `/proc/net` files) are made through `scope`, now or later.
    fn init<'a>(net: &'a Net, scope: &'a NetScope) -> impl PinInit<Self, Error> + 'a;

    /// Called once the state is in place (pinned), before it is published.
    fn started(&self, _net: &Net) {}

    /// Called when the namespace starts to go away (`pre_exit`), before any subsystem's or
    /// device's exit: its devices and the state's registrations are still in place. For what
    /// must stop before the devices go (threads holding sockets or routes of the namespace).
    fn pre_exit(&self, _net: &Net) {}

    /// Called before the state is dropped, once the namespace's [`NetScope`] has undone every
    /// registration: no packet, sysctl write or `/proc` read of `net` reaches it any more.
    fn exit(&self, _net: &Net) {}

    /// The `static` [`Pernet`] that registers this type.
    fn pernet() -> &'static Pernet<Self>;
}

/// Something registered in a namespace: undone when dropped.
trait Scoped: Send + Sync {}

impl<T: Send + Sync> Scoped for T {}

/// The registrations of one subsystem in one namespace (netfilter hooks, sysctl tables,
/// `/proc/net` files), each under a key the subsystem chooses.
///
/// A scope belongs to the namespace's [`PernetData`] state and undoes every registration
/// still in it when the namespace goes, before the state is dropped. Registrations are only
/// made into a scope (their types have no other public constructor), so none can outlive its
/// namespace, and making one needs no `unsafe`.
///
/// # Invariants
///
/// `net` is the namespace whose [`Pernet`] state holds this scope; it is alive for as long as
/// the scope can be reached.
#[pin_data]
pub struct NetScope {
    net: *mut bindings::net,
    #[pin]
    regs: Mutex<KVec<Option<KBox<dyn Scoped>>>>,
}

// SAFETY: The registrations are `Send + Sync`; the namespace pointer is only read.
unsafe impl Send for NetScope {}
// SAFETY: As above; the registrations are behind a mutex.
unsafe impl Sync for NetScope {}

impl NetScope {
    fn new(net: &Net) -> impl PinInit<Self> {
        let net = net.as_ptr();
        // INVARIANT: Built by `Pernet` inside the state of `net`.
        pin_init!(Self {
            net,
            regs <- crate::new_mutex!(KVec::new(), "net_scope"),
        })
    }

    /// The namespace.
    pub fn net(&self) -> &Net {
        // SAFETY: By the type invariants the namespace is alive while the scope is reachable.
        unsafe { Net::from_raw(self.net) }
    }

    /// Keeps `reg` under `key`, replacing (and undoing) what was there.
    pub(crate) fn insert<R: Send + Sync + 'static>(&self, key: usize, reg: R) -> Result {
        let b = KBox::new(reg, GFP_KERNEL)?;
        // CAST: Unsizing a pointer to `R` into one to `dyn Scoped`, implemented by `R`.
        let raw: *mut R = KBox::into_raw(b);
        let raw: *mut dyn Scoped = raw;
        // SAFETY: `raw` comes from `KBox::into_raw` just above, with its vtable added.
        let b = unsafe { KBox::from_raw(raw) };
        let old = {
            let mut regs = self.regs.lock();
            while regs.len() <= key {
                regs.push(None, GFP_KERNEL)?;
            }
            match regs.get_mut(key) {
                Some(slot) => slot.replace(b),
                None => None,
            }
        };
        // Undone outside the lock: unregistering may wait for running handlers.
        drop(old);
        Ok(())
    }

    /// Undoes the registration under `key`, if any.
    pub fn remove(&self, key: usize) {
        let old = self.regs.lock().get_mut(key).and_then(Option::take);
        drop(old);
    }

    /// Whether something is registered under `key`.
    pub fn contains(&self, key: usize) -> bool {
        self.regs.lock().get(key).is_some_and(Option::is_some)
    }

    /// Undoes every registration, last key first.
    fn clear(&self) {
        let mut all = core::mem::take(&mut *self.regs.lock());
        for slot in all.iter_mut().rev() {
            drop(slot.take());
        }
    }
}

/// The per-namespace allocation: the scope, then the state.
#[pin_data]
struct PernetBox<T> {
    #[pin]
    scope: NetScope,
    #[pin]
    state: T,
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
            (*ops).pre_exit = Some(Self::pre_exit_callback);
            (*ops).exit = Some(Self::exit_callback);
            (*ops).id = self.id.get();
            (*ops).size = core::mem::size_of::<*mut PernetBox<T>>();
        }
        // SAFETY: `ops` is fully initialised and lives forever.
        let ret = to_result(unsafe { bindings::register_pernet_subsys(ops) });
        if ret.is_err() {
            self.registered.store(false, Ordering::Release);
        }
        ret.map(|()| PernetRegistration { pernet: self })
    }

    fn slot(&self, net: &Net) -> *mut *mut PernetBox<T> {
        // SAFETY: Only called while registered, so `id` was assigned by the kernel and `net`
        // has a data block of `size_of::<*mut PernetBox<T>>()` bytes for it. `net_generic`
        // reads the namespace's array under its own RCU read lock; the block it returns is
        // allocated once per namespace and stays put until the namespace is freed.
        unsafe { bindings::net_generic(net.as_ptr(), *self.id.get()) }.cast::<*mut PernetBox<T>>()
    }

    fn get_box<'a>(&self, net: &'a Net) -> Option<&'a PernetBox<T>> {
        if !self.registered.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: The slot holds null or a pointer from `init_callback` that stays valid until
        // `exit_callback` runs, which only happens once `net` is dead, after `'a`.
        unsafe { (*self.slot(net)).as_ref() }
    }

    /// Returns the state of `net`, if registered.
    pub fn get<'a>(&self, net: &'a Net) -> Option<&'a T> {
        self.get_box(net).map(|b| &b.state)
    }

    /// [`Self::get`] inside an RCU read-side section (`_g`), for the packet path: the
    /// namespace's array of per-subsystem data is read in place, as the inline
    /// `net_generic` does, without a call.
    #[inline(always)]
    pub fn get_rcu<'a>(&self, net: &'a Net, _g: &crate::sync::rcu::Guard) -> Option<&'a T> {
        if !self.registered.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: Registered, so `id` is the kernel's index for this registration, and
        // `net->gen` (an RCU-protected pointer, valid for the read-side section `_g` stands
        // for) points to an array of data pointers (the flexible `ptr` member of `struct
        // net_generic`, at its start) that has one for `id`, as `net_generic` assumes. That
        // pointer is the namespace's data block of this registration, which holds the box's
        // pointer as in `slot`.
        let b = unsafe {
            let gen = ptr::read_volatile(ptr::addr_of!((*net.as_ptr()).gen_));
            let data = *gen.cast::<*mut *mut PernetBox<T>>().add(*self.id.get() as usize);
            *data
        };
        // SAFETY: The block holds null or a pointer from `init_callback` that stays valid until
        // `exit_callback` runs, which only happens once `net` is dead, after `'a`.
        unsafe { b.as_ref() }.map(|b| &b.state)
    }

    /// Returns the registration scope of `net`, if registered.
    pub fn scope<'a>(&self, net: &'a Net) -> Option<&'a NetScope> {
        self.get_box(net).map(|b| &b.scope)
    }

    unsafe extern "C" fn init_callback(net: *mut bindings::net) -> i32 {
        from_result(|| {
            // SAFETY: The kernel passes a namespace that is alive during the call.
            let net = unsafe { Net::from_raw(net) };
            let pernet = T::pernet();
            let b = KBox::try_pin_init(
                try_pin_init!(PernetBox::<T> {
                    scope <- NetScope::new(net),
                    state <- T::init(net, &scope),
                }? Error),
                GFP_KERNEL,
            )?;
            b.state.started(net);
            // SAFETY: The box is never moved out of: it is only dropped in place.
            let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(b) });
            // SAFETY: The slot belongs to this registration and `net`.
            unsafe { *pernet.slot(net) = raw };
            Ok(0)
        })
    }

    unsafe extern "C" fn pre_exit_callback(net: *mut bindings::net) {
        // SAFETY: The kernel passes a namespace that is alive during the call.
        let net = unsafe { Net::from_raw(net) };
        if let Some(state) = T::pernet().get(net) {
            state.pre_exit(net);
        }
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
            let b = unsafe { KBox::from_raw(raw) };
            b.scope.clear();
            b.state.exit(net);
            drop(b);
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

/// Whether a networking message may be logged now (`net_ratelimit`: a burst of 10 every 5
/// seconds, shared by the whole networking stack), for messages about hostile input.
pub fn net_ratelimit() -> bool {
    // SAFETY: An FFI call with no requirements.
    unsafe { bindings::net_ratelimit() != 0 }
}
