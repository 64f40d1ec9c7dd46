// SPDX-License-Identifier: GPL-2.0

//! Netfilter: packet hooks and socket option ranges.
//!
//! C header: [`include/linux/netfilter.h`](srctree/include/linux/netfilter.h)

use crate::{
    alloc::{flags::GFP_KERNEL, KBox, KVec},
    bindings,
    error::{code::*, to_result, Result},
    init::InPlaceInit,
    net::{
        namespace::{Net, NetScope},
        skbuff::SkBuff,
    },
    sync::{rcu, Arc},
    types::Opaque,
    uaccess::UserPtr,
    ThisModule,
};
use core::{ffi::c_void, marker::PhantomData, pin::Pin};

/// Protocol families of netfilter hooks.
pub mod pf {
    /// IPv4.
    pub const IPV4: u8 = crate::bindings::NFPROTO_IPV4 as u8;
    /// IPv6.
    pub const IPV6: u8 = crate::bindings::NFPROTO_IPV6 as u8;
}

/// The inet hook points.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum InetHook {
    /// Before routing.
    PreRouting = bindings::nf_inet_hooks_NF_INET_PRE_ROUTING,
    /// Packets for the local host.
    LocalIn = bindings::nf_inet_hooks_NF_INET_LOCAL_IN,
    /// Packets routed through the host.
    Forward = bindings::nf_inet_hooks_NF_INET_FORWARD,
    /// Packets sent by the local host.
    LocalOut = bindings::nf_inet_hooks_NF_INET_LOCAL_OUT,
    /// After routing.
    PostRouting = bindings::nf_inet_hooks_NF_INET_POST_ROUTING,
}

impl InetHook {
    /// Every hook point, indexed by its number (which the compiler checks below).
    const ALL: [Self; 5] = [
        Self::PreRouting,
        Self::LocalIn,
        Self::Forward,
        Self::LocalOut,
        Self::PostRouting,
    ];

    /// The hook point of number `hook`: one bounds check and a load (for every packet).
    #[inline(always)]
    fn from_raw(hook: u32) -> Option<Self> {
        Self::ALL.get(hook as usize).copied()
    }
}

const _: () = {
    let mut i = 0;
    while i < InetHook::ALL.len() {
        assert!(InetHook::ALL[i] as usize == i);
        i += 1;
    }
};

/// Proof that a hook function handed its packet on (an `NF_STOLEN` verdict).
///
/// Only functions that consume an [`SkBuff`] can make one.
pub struct Stolen(pub(crate) ());

/// What a hook decided about a packet.
pub enum Verdict<'a> {
    /// Let the packet continue (`NF_ACCEPT`).
    Accept(SkBuff<'a>),
    /// Drop the packet (`NF_DROP`); netfilter frees it.
    Drop(SkBuff<'a>),
    /// The hook took the packet (`NF_STOLEN`).
    Stolen(Stolen),
}

/// The state netfilter passes to a hook.
pub struct HookState<'a> {
    /// The hook point.
    pub hook: InetHook,
    /// The namespace the packet is in.
    pub net: &'a Net,
    /// Input device index, or 0.
    pub in_ifindex: i32,
    /// Protocol family of the hook ([`pf::IPV4`], [`pf::IPV6`]).
    pub pf: u8,
    /// Netfilter's read-side critical section around the hook functions.
    rcu: rcu::Held,
}

impl HookState<'_> {
    /// The RCU read-side critical section netfilter runs its hook functions in: no need to
    /// enter one of their own.
    #[inline(always)]
    pub fn rcu(&self) -> &rcu::Guard {
        &self.rcu
    }
}

/// A set of netfilter hook functions sharing one private data object.
pub trait Hooks: Send + Sync + Sized {
    /// Handles a packet at `state.hook`.
    fn hook<'a>(&self, skb: SkBuff<'a>, state: &HookState<'a>) -> Verdict<'a>;

    /// Whether the hook has a [`Self::pass`] test. Its body is then called out of line, so
    /// that a packet passed costs netfilter's callback no more than the test (no frame set up
    /// for the body); without one, the body is the callback.
    const PASS: bool = false;

    /// With [`Self::PASS`], a quick look at every packet before [`Self::hook`]: `true`
    /// accepts it at once.
    #[inline(always)]
    fn pass(_skb: &SkBuff<'_>) -> bool {
        false
    }
}

/// One hook point to attach to.
#[derive(Clone, Copy)]
pub struct HookSpec {
    /// Protocol family, see [`pf`].
    pub pf: u8,
    /// Hook point.
    pub hook: InetHook,
    /// Priority; lower runs first.
    pub priority: i32,
}

/// Netfilter hooks registered in one namespace; dropping unregisters them.
///
/// # Invariants
///
/// `ops` are registered in `net`, whose lifetime exceeds this object's (see [`Self::new`]).
pub struct Registration<T: Hooks> {
    net: *mut bindings::net,
    ops: KVec<bindings::nf_hook_ops>,
    _data: Arc<T>,
}

// SAFETY: The registration only holds pointers the kernel manages; `T` is `Send + Sync`.
unsafe impl<T: Hooks> Send for Registration<T> {}
// SAFETY: As above; no method mutates through `&self`.
unsafe impl<T: Hooks> Sync for Registration<T> {}

/// The function netfilter calls for the hooks of a [`Registration`] (see
/// [`Registration::hook_fn`]), to be told apart in the stack's hook lists.
#[derive(Clone, Copy)]
pub struct HookFn(bindings::nf_hookfn);

impl HookFn {
    /// The function pointer, as `struct nf_hook_ops` holds it.
    #[inline]
    pub fn raw(self) -> bindings::nf_hookfn {
        self.0
    }
}

impl<T: Hooks> Registration<T> {
    /// The function netfilter calls for `T`'s hooks, the same for every registration of `T`.
    #[inline]
    pub fn hook_fn() -> HookFn {
        HookFn(Some(Self::hook_callback))
    }

    /// Registers `T::hook` at every point of `specs` in the scope's namespace, kept in
    /// `scope` under `key` (see [`NetScope`]): until removed from it, or until the namespace
    /// goes.
    pub fn register(scope: &NetScope, key: usize, specs: &[HookSpec], data: Arc<T>) -> Result
    where
        T: 'static,
    {
        // SAFETY: The registration goes into the namespace's scope, which drops it before the
        // namespace is destroyed.
        let r = unsafe { Self::new(scope.net(), specs, data)? };
        scope.insert(key, r)
    }

    /// Registers `T::hook` at every point of `specs` in `net`.
    ///
    /// # Safety
    ///
    /// The registration must be dropped before `net` is destroyed.
    unsafe fn new(net: &Net, specs: &[HookSpec], data: Arc<T>) -> Result<Self> {
        let mut ops = KVec::with_capacity(specs.len(), GFP_KERNEL)?;
        for s in specs {
            // SAFETY: All-zeroes is a valid `nf_hook_ops`.
            let mut op: bindings::nf_hook_ops = unsafe { core::mem::zeroed() };
            op.hook = Some(Self::hook_callback);
            op.pf = s.pf;
            op.hooknum = s.hook as u32;
            op.priority = s.priority;
            op.priv_ = (&*data as *const T).cast_mut().cast::<c_void>();
            ops.push(op, GFP_KERNEL)?;
        }
        // SAFETY: `ops` is a valid array that stays at the same address (never resized) until
        // it is unregistered in `drop`; `net` is alive.
        to_result(unsafe {
            bindings::nf_register_net_hooks(net.as_ptr(), ops.as_ptr(), ops.len() as u32)
        })?;
        // INVARIANT: Registered above; the caller guarantees the namespace outlives us.
        Ok(Self {
            net: net.as_ptr(),
            ops,
            _data: data,
        })
    }

    unsafe extern "C" fn hook_callback(
        priv_: *mut c_void,
        skb: *mut bindings::sk_buff,
        state: *const bindings::nf_hook_state,
    ) -> u32 {
        if !T::PASS {
            // SAFETY: As this function's, passed on unchanged.
            return unsafe { Self::hook_body(priv_, skb, state) };
        }
        // SAFETY: Netfilter hands the hook ownership of `skb` until it returns a verdict; the
        // borrow ends before the body takes it.
        if T::pass(&unsafe { SkBuff::from_raw(skb) }) {
            return bindings::NF_ACCEPT;
        }
        // SAFETY: As this function's, passed on unchanged.
        unsafe { Self::hook_body_outlined(priv_, skb, state) }
    }

    /// [`Self::hook_body`], out of line.
    ///
    /// # Safety
    ///
    /// As [`Self::hook_body`].
    #[inline(never)]
    unsafe fn hook_body_outlined(
        priv_: *mut c_void,
        skb: *mut bindings::sk_buff,
        state: *const bindings::nf_hook_state,
    ) -> u32 {
        // SAFETY: As this function's, passed on unchanged.
        unsafe { Self::hook_body(priv_, skb, state) }
    }

    /// [`Self::hook_callback`] for a packet [`Hooks::pass`] did not accept.
    ///
    /// # Safety
    ///
    /// As netfilter's hook functions: `priv_` is this registration's `T`, `skb` a packet the
    /// hook owns until it returns a verdict, `state` valid for the call.
    #[inline(always)]
    unsafe fn hook_body(
        priv_: *mut c_void,
        skb: *mut bindings::sk_buff,
        state: *const bindings::nf_hook_state,
    ) -> u32 {
        // SAFETY: `priv_` is the `T` that `Registration` keeps alive while registered.
        let this = unsafe { &*priv_.cast::<T>() };
        // SAFETY: Netfilter passes a valid state for the duration of the call.
        let st = unsafe { &*state };
        let Some(hook) = InetHook::from_raw(st.hook as u32) else {
            return bindings::NF_ACCEPT;
        };
        let state = HookState {
            hook,
            // SAFETY: The packet's namespace is alive while the packet is processed.
            net: unsafe { Net::from_raw(st.net) },
            in_ifindex: if st.in_.is_null() {
                0
            } else {
                // SAFETY: `in_` is a valid device while the hook runs.
                unsafe { (*st.in_).ifindex }
            },
            pf: st.pf,
            // SAFETY: Netfilter calls its hook functions inside an RCU read-side critical
            // section (`nf_hook`, `nf_reinject`), which outlives `state`.
            rcu: unsafe { rcu::Held::new() },
        };
        // SAFETY: Netfilter hands the hook ownership of `skb` until it returns a verdict.
        let skb = unsafe { SkBuff::from_raw(skb) };
        match this.hook(skb, &state) {
            Verdict::Accept(_) => bindings::NF_ACCEPT,
            Verdict::Drop(_) => bindings::NF_DROP,
            Verdict::Stolen(_) => bindings::NF_STOLEN,
        }
    }
}

impl<T: Hooks> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants `ops` are registered in the live `net`. Unregistering
        // waits for running hooks to finish, so `_data` can be dropped after this.
        unsafe {
            bindings::nf_unregister_net_hooks(self.net, self.ops.as_ptr(), self.ops.len() as u32)
        };
    }
}

/// The argument of a `setsockopt()` call, in user or kernel memory.
pub struct SockoptArg {
    ptr: bindings::sockptr_t,
    len: usize,
}

impl SockoptArg {
    /// The length the caller passed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the argument is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the first `buf.len()` bytes of the argument, `EFAULT` on a bad address or
    /// `EINVAL` if the argument is shorter.
    pub fn read(&self, buf: &mut [u8]) -> Result {
        if buf.len() > self.len {
            return Err(EINVAL);
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes of writes; `ptr` is the caller's
        // argument of `len` bytes, checked to be long enough.
        let ret = unsafe {
            bindings::copy_from_sockptr(buf.as_mut_ptr().cast::<c_void>(), self.ptr, buf.len())
        };
        if ret != 0 {
            return Err(EFAULT);
        }
        Ok(())
    }
}

/// Handlers of a range of socket options (`struct nf_sockopt_ops`).
///
/// [`UserSlice`]: crate::uaccess::UserSlice
pub trait SockoptOps: Sync {
    /// `setsockopt(optname = cmd)` from a socket in `net`.
    fn set(net: &Net, cmd: i32, arg: &SockoptArg) -> Result;

    /// `getsockopt(optname = cmd)`: `user` is the address of the caller's buffer of `*len`
    /// bytes (access it with [`UserSlice`]); on success `*len` is the length to report back.
    fn get(net: &Net, cmd: i32, user: UserPtr, len: &mut i32) -> Result;
}

/// Netfilter socket option handlers; dropping unregisters them.
pub struct SockoptRegistration<T: SockoptOps> {
    ops: Pin<KBox<Opaque<bindings::nf_sockopt_ops>>>,
    _p: PhantomData<T>,
}

// SAFETY: The registration only holds kernel-managed data; the handlers are `Sync`.
unsafe impl<T: SockoptOps> Send for SockoptRegistration<T> {}
// SAFETY: As above.
unsafe impl<T: SockoptOps> Sync for SockoptRegistration<T> {}

impl<T: SockoptOps> SockoptRegistration<T> {
    /// Registers handlers for `set_range` and `get_range` (half-open: `[min, max)`) of `pf`.
    pub fn new(
        module: &'static ThisModule,
        pf: u8,
        set_range: (i32, i32),
        get_range: (i32, i32),
    ) -> Result<Self> {
        let ops = KBox::pin_init(
            Opaque::ffi_init(|slot: *mut bindings::nf_sockopt_ops| {
                // SAFETY: `slot` is valid for writes; all-zeroes is a valid value.
                unsafe {
                    slot.write(core::mem::zeroed());
                    (*slot).pf = pf;
                    (*slot).set_optmin = set_range.0;
                    (*slot).set_optmax = set_range.1;
                    (*slot).set = Some(Self::set_callback);
                    (*slot).get_optmin = get_range.0;
                    (*slot).get_optmax = get_range.1;
                    (*slot).get = Some(Self::get_callback);
                    (*slot).owner = module.as_ptr();
                }
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: `ops` is initialised and pinned until unregistered in `drop`.
        to_result(unsafe { bindings::nf_register_sockopt(ops.get()) })?;
        Ok(Self {
            ops,
            _p: PhantomData,
        })
    }

    unsafe extern "C" fn set_callback(
        sk: *mut bindings::sock,
        optval: i32,
        arg: bindings::sockptr_t,
        len: u32,
    ) -> i32 {
        // SAFETY: The socket is valid for the call and so is its namespace.
        let net = unsafe { Net::from_raw(bindings::sock_net(sk)) };
        let arg = SockoptArg {
            ptr: arg,
            len: len as usize,
        };
        match T::set(net, optval, &arg) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    unsafe extern "C" fn get_callback(
        sk: *mut bindings::sock,
        optval: i32,
        user: *mut c_void,
        len: *mut i32,
    ) -> i32 {
        // SAFETY: The socket is valid for the call and so is its namespace.
        let net = unsafe { Net::from_raw(bindings::sock_net(sk)) };
        // SAFETY: `len` points to the kernel copy of the caller's length.
        let len = unsafe { &mut *len };
        match T::get(net, optval, user as UserPtr, len) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }
}

impl<T: SockoptOps> Drop for SockoptRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`; unregistering waits for running handlers.
        unsafe { bindings::nf_unregister_sockopt(self.ops.get()) };
    }
}
