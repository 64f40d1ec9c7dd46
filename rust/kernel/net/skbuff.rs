// SPDX-License-Identifier: GPL-2.0

//! Socket buffers as seen by a netfilter hook.
//!
//! C header: [`include/linux/skbuff.h`](srctree/include/linux/skbuff.h)

use crate::{
    alloc::flags::GFP_ATOMIC,
    bindings,
    error::{code::*, to_result, Result},
    net::{
        namespace::Net,
        netfilter::{HookFn, Stolen},
    },
    sync::rcu::{self, RcuBox, RcuNode},
};
use core::{marker::PhantomData, ptr::NonNull};

/// Checksum state of a packet (`skb->ip_summed`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Checksum {
    /// Not verified.
    None,
    /// Verified by the device.
    Unnecessary,
    /// `skb->csum` holds the sum of the whole packet.
    Complete,
    /// The transport checksum is still to be filled in (pseudo header only so far).
    Partial,
}

/// A reference to an output route of either family (`struct dst_entry`: an IPv4 `rtable`
/// or an IPv6 `rt6_info`).
///
/// # Invariants
///
/// `ptr` is a valid route on which this object holds a reference. `cookie` is the IPv6
/// route's validity cookie (`rt6_get_cookie`), 0 for IPv4; `local` says whether it delivers
/// to this host, a property a route keeps for its life.
pub struct Route {
    ptr: NonNull<bindings::dst_entry>,
    cookie: u32,
    local: bool,
}

// SAFETY: A route reference may be used and released from any context.
unsafe impl Send for Route {}
// SAFETY: The `&self` methods only read the route.
unsafe impl Sync for Route {}

impl Route {
    /// Looks up the output route to IPv4 `daddr` (from `saddr`, or any if zero), taking
    /// `daddr` as the next hop. Returns it and the source address it selects.
    pub fn output_v4(net: &Net, daddr: [u8; 4], saddr: [u8; 4], tos: u8) -> Result<(Self, [u8; 4])> {
        let mut src = u32::from_ne_bytes(saddr);
        // SAFETY: Valid namespace; `src` is valid for reads and writes.
        let rt = unsafe {
            bindings::ip_route_output_v4(net.as_ptr(), u32::from_ne_bytes(daddr), &mut src, tos)
        };
        let rt = crate::error::from_err_ptr(rt)?;
        let ptr = NonNull::new(rt).ok_or(EINVAL)?;
        // SAFETY: A successful lookup returns a referenced, valid route; its flags do not
        // change once published.
        let local = unsafe { (*ptr.as_ptr()).rt_flags } & bindings::RTCF_LOCAL != 0;
        // INVARIANT: A successful lookup returns a referenced route; the `dst` is the first
        // member of `struct rtable`.
        Ok((Self { ptr: ptr.cast(), cookie: 0, local }, src.to_ne_bytes()))
    }

    /// Looks up the output route to IPv6 `daddr` (`ip6_route_output`), taking `daddr` as the
    /// next hop. Returns it and the source address the stack selects for it.
    pub fn output_v6(net: &Net, daddr: &[u8; 16]) -> Result<(Self, [u8; 16])> {
        let mut saddr = [0u8; 16];
        let (mut cookie, mut local) = (0u32, false);
        // SAFETY: Valid namespace; the address buffers are 16 bytes (`struct in6_addr`) and,
        // like `cookie` and `local`, valid for the call.
        let dst = unsafe {
            bindings::ip6_route_output_ipvs(
                net.as_ptr(),
                daddr.as_ptr().cast(),
                saddr.as_mut_ptr().cast(),
                &mut cookie,
                &mut local,
            )
        };
        let dst = crate::error::from_err_ptr(dst)?;
        let ptr = NonNull::new(dst).ok_or(EINVAL)?;
        // INVARIANT: A successful lookup returns a referenced route and its cookie.
        Ok((Self { ptr, cookie, local }, saddr))
    }

    /// [`Self::output`], kept in `slot` for one packet.
    pub fn output_into<'s>(
        net: &Net,
        v6: bool,
        daddr: &[u8; 16],
        slot: &'s mut RouteSlot,
    ) -> Result<RouteRef<'s>> {
        let (rt, saddr) = Self::output(net, v6, daddr)?;
        Ok(slot.put(rt, saddr))
    }

    /// Looks up the output route to `daddr`, an IPv6 address if `v6`, else IPv4 in its
    /// first 4 bytes; returns it and the source address it selects (IPv4: 4 bytes, zeroes
    /// after).
    pub fn output(net: &Net, v6: bool, daddr: &[u8; 16]) -> Result<(Self, [u8; 16])> {
        if v6 {
            return Self::output_v6(net, daddr);
        }
        let (rt, s) = Self::output_v4(net, [daddr[0], daddr[1], daddr[2], daddr[3]], [0; 4], 0)?;
        let mut saddr = [0u8; 16];
        saddr[..4].copy_from_slice(&s);
        Ok((rt, saddr))
    }

    /// Whether the route delivers to this host (IPv4 `RTCF_LOCAL`, IPv6 a route through the
    /// loopback device).
    #[inline]
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The route's MTU.
    #[inline]
    pub fn mtu(&self) -> u32 {
        // SAFETY: Valid route by the type invariants.
        unsafe { bindings::dst_mtu(self.ptr.as_ptr()) }
    }

    /// Whether the route is still valid (`dst_check` with its cookie).
    #[inline]
    pub fn check(&self) -> bool {
        // SAFETY: Valid route by the type invariants.
        unsafe { bindings::dst_check_cookie(self.ptr.as_ptr(), self.cookie) }
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we hold a reference, released once here.
        unsafe { bindings::dst_release(self.ptr.as_ptr()) };
    }
}

/// A route to one address kept for the packets that follow (IPVS's `dest_dst`).
///
/// Readers use the cached route under RCU without touching its reference count; one that a
/// routing change, a path MTU exception or its device going away made stale (`dst_check`) is
/// looked up again and replaced, the old one released after a grace period. Modules using
/// it must call [`rcu::barrier`] before they are unloaded.
pub struct RouteCache {
    cur: RcuBox<CachedRoute>,
}

/// A route in a [`RouteCache`], with the source address it selects.
pub struct CachedRoute {
    rt: Route,
    saddr: [u8; 16],
}

/// A route for one packet, with the source address it selects: borrowed from a
/// [`RouteCache`] for the read-side critical section, or owned (when there was no memory to
/// cache it), in a slot of the caller's ([`RouteSlot`]) that attaching it empties. Either is
/// a reference: the value stays small enough for registers on the hot path.
pub enum RouteRef<'g> {
    /// From the cache, valid while the RCU guard it was obtained under is held.
    Cached(&'g CachedRoute),
    /// A referenced route of its own, and its source address, in the caller's slot.
    Owned(&'g mut RouteSlot),
}

/// Where an uncached route for one packet is kept until it is attached (see [`RouteRef`]).
#[derive(Default)]
pub struct RouteSlot(Option<CachedRoute>);

impl RouteSlot {
    /// An empty slot.
    pub const fn new() -> Self {
        Self(None)
    }

    /// Keeps `rt` and its source address here; a reference to the slot stands for it.
    fn put(&mut self, rt: Route, saddr: [u8; 16]) -> RouteRef<'_> {
        self.0 = Some(CachedRoute { rt, saddr });
        RouteRef::Owned(self)
    }
}

/// The source address of an empty slot (never seen: a slot is filled before it is used).
const NO_ADDR: [u8; 16] = [0; 16];

impl RouteRef<'_> {
    #[inline]
    fn rt(&self) -> Option<&Route> {
        match self {
            RouteRef::Cached(c) => Some(&c.rt),
            RouteRef::Owned(s) => s.0.as_ref().map(|c| &c.rt),
        }
    }

    /// The source address the route selects (IPv4 in the first 4 bytes).
    #[inline]
    pub fn saddr(&self) -> &[u8; 16] {
        match self {
            RouteRef::Cached(c) => &c.saddr,
            RouteRef::Owned(s) => s.0.as_ref().map_or(&NO_ADDR, |c| &c.saddr),
        }
    }

    /// Whether the route delivers to this host.
    #[inline]
    pub fn is_local(&self) -> bool {
        self.rt().is_some_and(|r| r.is_local())
    }

    /// The route's MTU.
    #[inline]
    pub fn mtu(&self) -> u32 {
        self.rt().map_or(0, |r| r.mtu())
    }
}

impl Default for RouteCache {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self { cur: RcuBox::new(None) }
    }

    /// The output route to `daddr` (IPv6 if `v6`, else IPv4 in its first 4 bytes, as the
    /// next hop) and its source address: the cached one if still valid, else a new lookup,
    /// which is cached unless its device is going down.
    /// A route not cached (no memory for it, or its device going down) is kept in `slot`.
    #[inline(always)]
    pub fn output<'g>(
        &'g self,
        net: &Net,
        v6: bool,
        daddr: &[u8; 16],
        g: &'g rcu::Guard,
        slot: &'g mut RouteSlot,
    ) -> Result<RouteRef<'g>> {
        if let Some(c) = self.cur.get(g) {
            if c.rt.check() {
                return Ok(RouteRef::Cached(c));
            }
        }
        self.output_slow(net, v6, daddr, g, slot)
    }

    /// [`Self::output`] without a valid cached route: looked up and cached.
    #[inline(never)]
    fn output_slow<'g>(
        &'g self,
        net: &Net,
        v6: bool,
        daddr: &[u8; 16],
        g: &'g rcu::Guard,
        slot: &'g mut RouteSlot,
    ) -> Result<RouteRef<'g>> {
        let (rt, saddr) = Route::output(net, v6, daddr)?;
        // SAFETY: Valid route by the type invariants of `Route`.
        if unsafe { bindings::dst_dev_is_down(rt.ptr.as_ptr()) } {
            return Ok(slot.put(rt, saddr));
        }
        let Ok(new) = RcuNode::new(CachedRoute { rt, saddr }, GFP_ATOMIC) else {
            // The lookup's route was dropped with the failed box: look up once more.
            let (rt, saddr) = Route::output(net, v6, daddr)?;
            return Ok(slot.put(rt, saddr));
        };
        self.cur.replace_deferred(Some(new));
        // Ours, or one another CPU installed meanwhile; either stays valid until `g` ends,
        // since a replaced value is freed only after a grace period.
        match self.cur.get(g) {
            Some(c) => Ok(RouteRef::Cached(c)),
            None => Err(EAGAIN),
        }
    }

    /// Forgets the cached route (released after a grace period).
    pub fn reset(&self) {
        self.cur.replace_deferred(None);
    }
}

/// The `headers` group of `struct sk_buff` (protocol header offsets, checksum state, flags).
type Headers = bindings::sk_buff__bindgen_ty_4__bindgen_ty_2;

/// The kinds of tunnel a packet can be sent through, for [`SkBuff::tunnel_prepare`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Encap {
    /// IP-in-IP.
    Ipip,
    /// GUE (`hdr_len` bytes of GUE header and options) in UDP, the UDP checksum set if
    /// `csum`, the inner checksum left to the receiver if `remote_csum`.
    Gue {
        /// Length of the GUE header with its options.
        hdr_len: u32,
        /// The outer UDP header carries a checksum.
        csum: bool,
        /// Remote checksum offload.
        remote_csum: bool,
    },
    /// GRE, with a checksum if `csum`.
    Gre {
        /// The GRE header carries a checksum.
        csum: bool,
    },
}

impl Encap {
    /// Bytes of headers besides the outer IP header.
    pub fn headroom(&self) -> u32 {
        match *self {
            Encap::Ipip => 0,
            Encap::Gue { hdr_len, .. } => hdr_len.saturating_add(8),
            Encap::Gre { csum } => if csum { 8 } else { 4 },
        }
    }

    /// GSO type of the encapsulation (`__tun_gso_type_mask` of the outer family, and the
    /// tunnel's own bits).
    fn gso_type(&self, outer_v6: bool) -> u32 {
        let mut t = if outer_v6 { bindings::SKB_GSO_IPXIP6 } else { bindings::SKB_GSO_IPXIP4 };
        match *self {
            Encap::Ipip => {}
            Encap::Gue { csum, remote_csum, .. } => {
                t |= if csum || remote_csum {
                    bindings::SKB_GSO_UDP_TUNNEL_CSUM
                } else {
                    bindings::SKB_GSO_UDP_TUNNEL
                };
                if remote_csum {
                    t |= bindings::SKB_GSO_TUNNEL_REMCSUM;
                }
            }
            Encap::Gre { csum } => {
                t |= if csum { bindings::SKB_GSO_GRE_CSUM } else { bindings::SKB_GSO_GRE };
            }
        }
        t
    }
}

/// What [`SkBuff::ipv6_find_hdr`] found at the end of an IPv6 header chain.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ipv6Chain {
    /// The first header that is not an extension header (the transport protocol).
    pub protocol: u8,
    /// Its offset after the network header (for a non-first fragment, the IPv6 header's
    /// end: its transport header is elsewhere).
    pub l4_off: usize,
    /// Fragment offset of a non-first fragment, 0 otherwise.
    pub fragoff: u16,
    /// Whether the chain has a fragment header.
    pub frag: bool,
}

/// A packet owned by the current netfilter hook invocation.
///
/// Offsets are relative to the network header.
///
/// # Invariants
///
/// `ptr` is a valid `sk_buff` owned by the hook for `'a`.
pub struct SkBuff<'a> {
    ptr: NonNull<bindings::sk_buff>,
    _p: PhantomData<&'a mut bindings::sk_buff>,
}

impl<'a> SkBuff<'a> {
    /// Takes a packet handed to a hook.
    ///
    /// # Safety
    ///
    /// `ptr` must be a valid `sk_buff` exclusively owned by the caller for `'a`.
    pub unsafe fn from_raw(ptr: *mut bindings::sk_buff) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self {
            // SAFETY: The caller guarantees a valid pointer.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            _p: PhantomData,
        }
    }

    #[inline]
    fn raw(&self) -> *mut bindings::sk_buff {
        self.ptr.as_ptr()
    }

    // The accessors below read and write `struct sk_buff` fields in place, as the C inline
    // functions of `<linux/skbuff.h>` do, rather than through out-of-line helpers: they run
    // for every packet.

    /// The packet's header fields (the `headers` group of `struct sk_buff`).
    #[inline]
    fn headers(&self) -> *mut Headers {
        // SAFETY: Valid packet by the type invariants; only the address is taken. `headers`
        // is a member of a union, at its start.
        unsafe { core::ptr::addr_of_mut!((*self.raw()).__bindgen_anon_4.headers).cast() }
    }

    /// `skb_network_header`: the address of the network header.
    #[inline]
    fn network_header(&self) -> *mut u8 {
        // SAFETY: Valid packet by the type invariants; `head + network_header` is inside
        // its buffer.
        unsafe { (*self.raw()).head.add(usize::from((*self.headers()).network_header)) }
    }

    /// `skb_network_offset`: the network header's offset from `data` (may be negative).
    #[inline]
    fn network_offset(&self) -> isize {
        // SAFETY: Valid packet by the type invariants; both pointers are into its buffer.
        unsafe { self.network_header().offset_from((*self.raw()).data) }
    }

    /// `skb_headlen`: the bytes in the linear area from `data` on.
    #[inline]
    fn headlen(&self) -> u32 {
        // SAFETY: Valid packet by the type invariants.
        unsafe { (*self.raw()).len - (*self.raw()).data_len }
    }

    /// `pskb_may_pull`: makes the first `len` bytes from `data` linear.
    #[inline(always)]
    fn may_pull(&mut self, len: u32) -> bool {
        if len <= self.headlen() {
            return true;
        }
        // SAFETY: Valid packet by the type invariants.
        if len > unsafe { (*self.raw()).len } {
            return false;
        }
        let delta = (len - self.headlen()) as i32;
        // SAFETY: Valid packet, exclusively owned; `delta` is positive and within its length.
        !unsafe { bindings::__pskb_pull_tail(self.raw(), delta) }.is_null()
    }

    /// The attached route with its `SKB_DST_NOREF` flag (`_skb_refdst`).
    #[inline(always)]
    fn refdst(&self) -> usize {
        // SAFETY: Valid packet by the type invariants; `_skb_refdst` is the member of its
        // union in use while the packet is in the IP layer.
        unsafe { (*self.raw()).__bindgen_anon_3.__bindgen_anon_1._skb_refdst as usize }
    }

    /// `skb_dst`: the attached route, or null. (Hooks run under RCU, which keeps a route
    /// attached without a reference valid, as `skb_dst` requires.)
    #[inline(always)]
    fn dst(&self) -> *mut bindings::dst_entry {
        (self.refdst() & !(bindings::SKB_DST_NOREF as usize)) as *mut bindings::dst_entry
    }

    /// Total length from the network header on.
    #[inline]
    pub fn len(&self) -> u32 {
        // SAFETY: Valid packet by the type invariants.
        let len = unsafe { (*self.raw()).len };
        (len as i64 - self.network_offset() as i64).max(0) as u32
    }

    /// Whether the packet carries no bytes after the network header.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The firewall mark.
    #[inline]
    pub fn mark(&self) -> u32 {
        // SAFETY: Valid packet by the type invariants; `mark` is the member of its union in
        // use on the receive and forward paths.
        unsafe { (*self.headers()).__bindgen_anon_4.mark }
    }

    /// Whether the packet is a GSO super-packet.
    #[inline]
    pub fn is_gso(&self) -> bool {
        // SAFETY: Valid packet by the type invariants: its shared info (`skb_shinfo`) is at
        // offset `end` of its buffer.
        unsafe {
            let skb = self.raw();
            let shinfo = (*skb).head.add((*skb).end as usize).cast::<bindings::skb_shared_info>();
            (*shinfo).gso_size != 0
        }
    }

    /// The checksum state.
    #[inline]
    pub fn checksum(&self) -> Checksum {
        // SAFETY: Valid packet by the type invariants.
        match unsafe { Headers::ip_summed_raw(self.headers()) } as u32 {
            bindings::CHECKSUM_UNNECESSARY => Checksum::Unnecessary,
            bindings::CHECKSUM_COMPLETE => Checksum::Complete,
            bindings::CHECKSUM_PARTIAL => Checksum::Partial,
            _ => Checksum::None,
        }
    }

    #[inline]
    fn linear_len(&self) -> usize {
        (self.headlen() as i64 - self.network_offset() as i64).max(0) as usize
    }

    /// Makes the first `len` bytes linear and returns them, or `EINVAL` if the packet is shorter.
    #[inline(always)]
    pub fn pull(&mut self, len: usize) -> Result<&[u8]> {
        let total = u32::try_from(self.network_offset() as i64 + len as i64).map_err(|_| EINVAL)?;
        if !self.may_pull(total) {
            return Err(EINVAL);
        }
        // SAFETY: `may_pull` made `len` bytes after the network header linear; `&self`
        // is borrowed for the slice's lifetime so the buffer cannot change meanwhile.
        Ok(unsafe { core::slice::from_raw_parts(self.network_header(), len) })
    }

    /// Makes the first `len` bytes linear and private to this packet, and returns them.
    #[inline(always)]
    pub fn writable(&mut self, len: usize) -> Result<&mut [u8]> {
        let total = i32::try_from(self.network_offset() as i64 + len as i64).map_err(|_| EINVAL)?;
        // `skb_ensure_writable`'s answer without the call for the common packet, whose
        // bytes are linear and whose data no clone shares (`cloned` clear: `skb_cloned`
        // is then false).
        // SAFETY: Valid packet by the type invariants.
        let ready = (total as u32) <= self.headlen() && unsafe { bindings::sk_buff::cloned_raw(self.raw()) } == 0;
        // SAFETY: Valid packet, exclusively owned.
        if !ready && unsafe { bindings::skb_ensure_writable(self.raw(), total as u32) } != 0 {
            return Err(ENOMEM);
        }
        // SAFETY: `skb_ensure_writable` made `len` bytes after the network header linear and
        // unshared; `&mut self` is borrowed for the slice's lifetime.
        Ok(unsafe { core::slice::from_raw_parts_mut(self.network_header(), len) })
    }

    /// Makes the packet linear and private and gives it `len` bytes after the network
    /// header: grown at the tail (the new bytes zeroed) or trimmed. Headers are not
    /// updated, and a received or partial checksum state no longer fits the data: the
    /// caller recomputes the checksums (and may then call [`Self::set_csum_unnecessary`]).
    pub fn resize(&mut self, len: usize) -> Result {
        let total = u32::try_from(self.network_offset() as i64 + len as i64).map_err(|_| EINVAL)?;
        // SAFETY: Valid packet, exclusively owned (type invariants); the helper may
        // reallocate its head, which no borrowed slice outlives (`&mut self`).
        to_result(unsafe { bindings::skb_resize_linear(self.raw(), total) })
    }

    /// Updates the 16-bit transport checksum at offset `at` after a 32-bit field of the
    /// packet changed from `from` to `to` (both in network byte order as read from the
    /// packet); `pseudo` when the field is part of the pseudo header. Handles every
    /// [`Checksum`] state (`inet_proto_csum_replace4`).
    ///
    /// The bytes at `at` must have been made [writable](Self::writable).
    pub fn csum_replace4(&mut self, at: usize, from: [u8; 4], to: [u8; 4], pseudo: bool) -> Result {
        if at + 2 > self.linear_len() {
            return Err(EINVAL);
        }
        // SAFETY: Valid packet; `at + 2` is inside the linear area checked above.
        unsafe {
            let sum = self.network_header().add(at).cast::<u16>();
            bindings::inet_proto_csum_replace4(
                sum,
                self.raw(),
                u32::from_ne_bytes(from),
                u32::from_ne_bytes(to),
                pseudo,
            );
        }
        Ok(())
    }

    /// As [`Self::csum_replace4`] for a 16-bit field.
    pub fn csum_replace2(&mut self, at: usize, from: [u8; 2], to: [u8; 2], pseudo: bool) -> Result {
        self.csum_replace4(at, [0, 0, from[0], from[1]], [0, 0, to[0], to[1]], pseudo)
    }

    /// Attaches `rt` as the packet's route, replacing the current one. A cached route is
    /// attached without a reference (`skb_dst_set_noref`).
    #[inline(always)]
    pub fn set_route_ref(&mut self, rt: RouteRef<'_>) {
        match rt {
            RouteRef::Owned(slot) => {
                if let Some(c) = slot.0.take() {
                    self.set_route(c.rt);
                }
            }
            RouteRef::Cached(CachedRoute { rt, .. }) => {
                // `skb_dst_drop` then `skb_dst_set_noref`, in place: they run for every
                // packet. The old route's reference, if it holds one, is released.
                let old = self.refdst();
                if old != 0 && old & bindings::SKB_DST_NOREF as usize == 0 {
                    // SAFETY: A route attached without the noref flag holds a reference,
                    // which the packet gives up here (its pointer is overwritten below).
                    unsafe { bindings::dst_release(old as *mut bindings::dst_entry) };
                }
                // SAFETY: Valid packet, exclusively owned, and valid route: `rt` was borrowed
                // under an RCU guard that is still held (its lifetime bounds `RouteRef`, which
                // stands for `skb_dst_set_noref`'s check that the read lock is held), and a
                // cached route is freed only after a grace period; as for every noref route,
                // the stack takes a reference (`skb_dst_force`) before the packet outlives
                // the critical section. `slow_gro` is set as for any attached route.
                unsafe {
                    Headers::set_slow_gro_raw(self.headers(), 1);
                    (*self.raw()).__bindgen_anon_3.__bindgen_anon_1._skb_refdst =
                        (rt.ptr.as_ptr() as usize | bindings::SKB_DST_NOREF as usize) as _;
                }
            }
        }
    }

    /// Attaches `rt` as the packet's route, replacing the current one.
    #[inline]
    pub fn set_route(&mut self, rt: Route) {
        let rt = core::mem::ManuallyDrop::new(rt);
        // SAFETY: Valid packet; the route reference `rt` holds passes to the packet.
        unsafe { bindings::skb_set_dst(self.raw(), rt.ptr.as_ptr()) };
    }

    /// Turns the packet into the inner packet (of transport protocol `inner_proto`:
    /// `IPPROTO_IPIP` or `IPPROTO_IPV6`) of a tunnel of kind `encap`: headroom for its
    /// headers and the outer IPv4 header (IPv6 if `outer_v6`), GSO set up for the
    /// encapsulation. The tunnel's own headers follow ([`Self::push_gue_header`],
    /// [`Self::push_udp_header`], [`Self::push_gre_header`]), then
    /// [`Self::push_ip_header`] or [`Self::push_ipv6_header`].
    pub fn tunnel_prepare(&mut self, encap: Encap, outer_v6: bool, inner_proto: u8) -> Result {
        // SAFETY: Valid packet, exclusively owned.
        to_result(unsafe {
            bindings::skb_tunnel_prepare(
                self.raw(),
                encap.headroom(),
                encap.gso_type(outer_v6) as i32,
                outer_v6,
                inner_proto,
            )
        })
    }

    /// Pushes `len` bytes in front of the packet (room made by [`Self::tunnel_prepare`]) and
    /// returns them to be filled in.
    fn push(&mut self, len: usize) -> Result<&mut [u8]> {
        let n = u32::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: Valid packet, exclusively owned; the helper checks the headroom.
        let p = unsafe { bindings::skb_push_checked(self.raw(), n) };
        if p.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `skb_push` made the `len` bytes at `p` part of the linear area of this
        // packet; `&mut self` is borrowed for the slice's lifetime.
        Ok(unsafe { core::slice::from_raw_parts_mut(p.cast::<u8>(), len) })
    }

    /// The checksum the hardware is left to fill in, if any: where its range starts,
    /// counted from the front of the packet (negative if before it), and where in that
    /// range it goes (`skb_checksum_start_offset`, `csum_offset`).
    pub fn partial_csum(&self) -> Option<(i32, u16)> {
        let (mut start, mut off) = (0i32, 0u16);
        // SAFETY: Valid packet; `start` and `off` are valid locations.
        unsafe { bindings::skb_partial_csum(self.raw(), &mut start, &mut off) }.then_some((start, off))
    }

    /// Pushes a GUE header (`hdr`, with its options) in front of the packet. With
    /// `remote_csum`, the packet's pending checksum is handed to the receiver (remote
    /// checksum offload: the packet no longer asks the hardware for it unless it is GSO).
    pub fn push_gue_header(&mut self, hdr: &[u8], remote_csum: bool) -> Result {
        self.push(hdr.len())?.copy_from_slice(hdr);
        if remote_csum {
            // SAFETY: Valid packet, exclusively owned.
            unsafe { bindings::skb_csum_to_remote(self.raw()) };
        }
        Ok(())
    }

    /// Pushes a UDP header to `dport` from the port that hashes the inner flow
    /// (`udp_flow_src_port`), with its length, makes it the transport header and sets its
    /// checksum for the outer addresses `saddr` and `daddr` (IPv6 if `v6`, else IPv4 in
    /// their first 4 bytes; no checksum if `nocheck`, which IPv6 honours only as upstream's
    /// `udp6_set_csum` does).
    pub fn push_udp_header(
        &mut self,
        net: &Net,
        dport: [u8; 2],
        nocheck: bool,
        saddr: &[u8; 16],
        daddr: &[u8; 16],
        v6: bool,
    ) -> Result {
        // SAFETY: Valid packet and namespace.
        let sport = unsafe { bindings::skb_udp_flow_src_port(net.as_ptr(), self.raw()) };
        // SAFETY: Valid packet.
        let len = unsafe { (*self.raw()).len }.checked_add(8).ok_or(EINVAL)?;
        // 16 bits, as upstream stores it.
        let len = len as u16;
        let h = self.push(8)?;
        h[0..2].copy_from_slice(&sport.to_ne_bytes());
        h[2..4].copy_from_slice(&dport);
        h[4..6].copy_from_slice(&len.to_be_bytes());
        h[6..8].fill(0);
        // SAFETY: Valid packet, exclusively owned; its first 8 bytes are the UDP header just
        // pushed, which becomes the transport header the checksum helper reads.
        unsafe {
            bindings::skb_reset_transport_header(self.raw());
            if v6 {
                bindings::skb_udp6_set_csum(self.raw(), nocheck, saddr.as_ptr().cast(), daddr.as_ptr().cast());
            } else {
                bindings::skb_udp_set_csum(
                    self.raw(),
                    nocheck,
                    u32::from_ne_bytes([saddr[0], saddr[1], saddr[2], saddr[3]]),
                    u32::from_ne_bytes([daddr[0], daddr[1], daddr[2], daddr[3]]),
                );
            }
        }
        Ok(())
    }

    /// Pushes a GRE header for an inner packet of EtherType `proto` (host order), with a
    /// checksum if `csum` (`gre_build_header`).
    pub fn push_gre_header(&mut self, csum: bool, proto: u16) -> Result {
        // SAFETY: Valid packet, exclusively owned; the helper checks the headroom.
        to_result(unsafe { bindings::skb_push_gre_header(self.raw(), csum, proto.to_be()) })
    }

    /// Pushes the outer 20-byte IPv4 header of a tunnel and makes it the network header;
    /// returned to be filled in. Call [`Self::ip_select_ident`] once it is.
    pub fn push_ip_header(&mut self) -> Result<&mut [u8]> {
        // SAFETY: Valid packet, exclusively owned; the helper checks the headroom.
        to_result(unsafe { bindings::skb_push_ip_header(self.raw()) })?;
        self.writable(20)
    }

    /// Pushes the outer 40-byte IPv6 header of a tunnel and makes it the network header;
    /// returned to be filled in.
    pub fn push_ipv6_header(&mut self) -> Result<&mut [u8]> {
        // SAFETY: Valid packet, exclusively owned; the helper checks the headroom.
        to_result(unsafe { bindings::skb_push_ipv6_header(self.raw()) })?;
        self.writable(40)
    }

    /// Chooses the IP ID of the (filled in) IPv4 header and lets the stack fragment the
    /// packet regardless of DF, as a tunnel endpoint must (`ip_select_ident`).
    pub fn ip_select_ident(&mut self, net: &Net) {
        // SAFETY: Valid packet with a complete IPv4 header; valid namespace.
        unsafe { bindings::skb_ip_select_ident(net.as_ptr(), self.raw()) };
    }

    /// The IPv6 header chain of the packet (`off` 0), or of the IPv6 packet quoted at `off`
    /// bytes after the network header, walked through its extension headers
    /// (`ipv6_find_hdr`). `EINVAL` (or the walk's error) for a truncated or bad chain.
    pub fn ipv6_find_hdr(&self, off: usize) -> Result<Ipv6Chain> {
        let off = u32::try_from(off).map_err(|_| EINVAL)?;
        let (mut l4, mut fragoff, mut frag) = (0u32, 0u16, false);
        // SAFETY: Valid packet; the helper only reads it (through `skb_header_pointer`);
        // the out-parameters are valid locations.
        let proto = unsafe {
            bindings::skb_ipv6_find_hdr(self.raw(), off, &mut l4, &mut fragoff, &mut frag)
        };
        to_result(proto.min(0))?;
        Ok(Ipv6Chain {
            protocol: proto as u8,
            l4_off: l4 as usize,
            fragoff,
            frag,
        })
    }

    /// Sends an ICMPv6 error about this packet back to its source (`icmpv6_send`); a
    /// locally sent packet counts as received on loopback, or on its route's device with
    /// `from_route` (the rule for "hop limit exceeded").
    pub fn icmpv6_send(&mut self, net: &Net, icmp_type: u8, code: u8, info: u32, from_route: bool) {
        // SAFETY: Valid packet, exclusively owned (the helper may set its device); valid
        // namespace.
        unsafe { bindings::skb_icmpv6_send(self.raw(), net.as_ptr(), icmp_type, code, info, from_route) };
    }

    /// Tells the packet's sender that its destination cannot be reached
    /// (`dst_link_failure`: ICMP host unreachable, ICMPv6 address unreachable).
    pub fn link_failure(&mut self) {
        // SAFETY: Valid packet, exclusively owned (the helper may set its device).
        unsafe { bindings::skb_link_failure(self.raw()) };
    }

    /// Whether the packet arrived on a device other than loopback.
    #[inline]
    pub fn from_remote_dev(&self) -> bool {
        // SAFETY: Valid packet by the type invariants.
        unsafe { bindings::skb_from_remote_dev(self.raw()) }
    }

    /// Whether the packet fits in `mtu` bytes: by its length, or a GSO packet by the length
    /// of its segments.
    #[inline]
    pub fn fits_mtu(&self, mtu: u32) -> bool {
        // SAFETY: Valid packet by the type invariants.
        unsafe { bindings::skb_fits_mtu(self.raw(), mtu) }
    }

    /// The largest fragment of an IPv6 packet reassembled by netfilter, 0 if none.
    #[inline]
    pub fn frag_max_size6(&self) -> u16 {
        // SAFETY: Valid packet by the type invariants.
        unsafe { bindings::skb_frag_max_size6(self.raw()) }
    }

    /// As [`Self::csum_replace4`] for a 16-byte field (an IPv6 address in the pseudo header).
    pub fn csum_replace16(&mut self, at: usize, from: &[u8; 16], to: &[u8; 16]) -> Result {
        if at + 2 > self.linear_len() {
            return Err(EINVAL);
        }
        let (mut f, mut t) = ([0u32; 4], [0u32; 4]);
        for i in 0..4 {
            f[i] = u32::from_ne_bytes([from[4 * i], from[4 * i + 1], from[4 * i + 2], from[4 * i + 3]]);
            t[i] = u32::from_ne_bytes([to[4 * i], to[4 * i + 1], to[4 * i + 2], to[4 * i + 3]]);
        }
        // SAFETY: Valid packet; `at + 2` is inside the linear area checked above; the
        // arrays are 4 words each.
        unsafe {
            let sum = self.network_header().add(at).cast::<u16>();
            bindings::inet_proto_csum_replace16(sum, self.raw(), f.as_ptr(), t.as_ptr(), true);
        }
        Ok(())
    }

    /// The transport checksum of an IPv6 packet over the bytes from `off` to its end, with
    /// the pseudo header of `saddr`, `daddr` and `proto`: the value to store in a zeroed
    /// checksum field, or 0 when a checksum present among them is right.
    pub fn csum_ipv6(&self, off: usize, saddr: &[u8; 16], daddr: &[u8; 16], proto: u8) -> Result<u16> {
        if off > self.len() as usize {
            return Err(EINVAL);
        }
        // SAFETY: Valid packet; `off` is within it, checked above; the addresses are 16
        // bytes.
        Ok(unsafe {
            bindings::skb_csum_ipv6(self.raw(), off as u32, saddr.as_ptr().cast(), daddr.as_ptr().cast(), proto)
        })
    }

    /// Re-routes a locally modified IPv6 packet by its new addresses (`ip6_route_me_harder`).
    pub fn route_me_harder6(&mut self, net: &Net) -> Result {
        // SAFETY: Valid packet, exclusively owned; valid namespace.
        to_result(unsafe { bindings::skb_ip6_route_me_harder(net.as_ptr(), self.raw()) })
    }

    /// Sends an IPv6 packet on its attached route, through the LOCAL_OUT hooks
    /// (`ip6_local_out`). The payload length is recomputed.
    #[inline]
    pub fn ip6_local_out(self, net: &Net) -> Stolen {
        // SAFETY: Ownership of the valid packet passes to the stack; `self` is consumed.
        unsafe { bindings::skb_ip6_local_out(net.as_ptr(), self.raw()) };
        Stolen(())
    }

    /// Whether the attached IPv6 route delivers locally (through the loopback device).
    #[inline]
    pub fn route6_is_local(&self) -> bool {
        // SAFETY: Valid packet by the type invariants.
        unsafe { bindings::skb_route6_is_local(self.raw()) }
    }

    /// Whether the attached route delivers locally.
    #[inline]
    pub fn route_is_local(&self) -> bool {
        let dst = self.dst();
        // SAFETY: An IPv4 packet's route is the `dst` at the start of a `struct rtable`
        // (`skb_rtable`), valid under the hook's RCU read-side critical section.
        !dst.is_null()
            && unsafe { (*dst.cast::<bindings::rtable>()).rt_flags } & bindings::RTCF_LOCAL != 0
    }

    /// MTU of the attached route, if any.
    pub fn route_mtu(&self) -> Option<u32> {
        let dst = self.dst();
        if dst.is_null() {
            None
        } else {
            // SAFETY: `dst` is the packet's valid route.
            Some(unsafe { bindings::dst_mtu(dst) })
        }
    }

    /// Re-routes a locally modified packet by its new addresses (`ip_route_me_harder`).
    pub fn route_me_harder(&mut self, net: &Net) -> Result {
        // SAFETY: Valid packet and namespace; `skb->sk` may be null.
        to_result(unsafe {
            bindings::ip_route_me_harder(
                net.as_ptr(),
                bindings::skb_get_sk(self.raw()),
                self.raw(),
                bindings::RTN_UNSPEC,
            )
        })
    }

    /// Sends an ICMP error about this packet back to its source (`icmp_send`).
    pub fn icmp_send(&self, icmp_type: u8, code: u8, info: u32) {
        // SAFETY: Valid packet by the type invariants; `icmp_send` only reads it.
        unsafe { bindings::skb_icmp_send(self.raw(), icmp_type as i32, code as i32, info) };
    }

    /// Detaches the packet from connection tracking and marks it untracked.
    #[inline]
    pub fn set_untracked(&mut self) {
        // SAFETY: Valid packet, exclusively owned: its conntrack reference, if any, is
        // dropped and the packet gets the untracked state (`nf_reset_ct`, `nf_ct_set`).
        unsafe { bindings::nf_reset_ct_untracked(self.raw()) };
    }

    /// The folded one's complement sum of the bytes from `off` (after the network header) to
    /// the end of the packet: 0 when a checksum covering them is right, or the value to store
    /// in a zeroed checksum field among them. `EINVAL` if the packet is shorter than `off`.
    pub fn csum_fold_from(&self, off: usize) -> Result<u16> {
        if off > self.len() as usize {
            return Err(EINVAL);
        }
        // SAFETY: Valid packet; `off` is within it, checked above.
        Ok(unsafe { bindings::skb_csum_fold_from(self.raw(), off as u32) })
    }

    /// Declares the packet's checksums verified or complete (`CHECKSUM_UNNECESSARY`).
    pub fn set_csum_unnecessary(&mut self) {
        // SAFETY: Valid packet by the type invariants.
        unsafe { bindings::skb_set_csum_unnecessary(self.raw()) };
    }

    /// Whether IPVS already handled the packet (`skb->ipvs_property`).
    #[inline]
    pub fn ipvs_property(&self) -> bool {
        // SAFETY: Valid packet by the type invariants.
        unsafe { Headers::ipvs_property_raw(self.headers()) != 0 }
    }

    /// Marks the packet as handled by IPVS, so that its hooks let it pass from now on.
    #[inline]
    pub fn set_ipvs_property(&mut self) {
        // SAFETY: Valid packet, exclusively owned.
        unsafe { Headers::set_ipvs_property_raw(self.headers(), 1) };
    }

    /// Lets the stack fragment the packet locally even with DF set (`skb->ignore_df`).
    #[inline]
    pub fn set_ignore_df(&mut self) {
        // SAFETY: Valid packet, exclusively owned.
        unsafe { Headers::set_ignore_df_raw(self.headers(), 1) };
    }

    /// Whether the packet was addressed to this host at the link layer (`PACKET_HOST`).
    #[inline]
    pub fn is_for_host(&self) -> bool {
        // SAFETY: Valid packet by the type invariants.
        let pkt_type =
            unsafe { Headers::pkt_type_raw(self.headers()) };
        u32::from(pkt_type) == bindings::PACKET_HOST
    }

    /// Whether the packet has a route attached.
    #[inline]
    pub fn has_route(&self) -> bool {
        !self.dst().is_null()
    }

    /// Removes the first `len` bytes after the network header: the packet then starts with
    /// the header that followed them (for instance the packet quoted by an ICMP error).
    pub fn pull_network(&mut self, len: usize) -> Result {
        let len = u32::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: Valid packet, exclusively owned.
        to_result(unsafe { bindings::skb_pull_network(self.raw(), len) })
    }

    /// Records `mtu` as the path MTU towards the destination of the packet's IPv4 header
    /// (`ipv4_update_pmtu`).
    pub fn update_pmtu_v4(&mut self, net: &Net, mtu: u32) {
        // SAFETY: Valid packet with an IPv4 network header; valid namespace.
        unsafe { bindings::skb_update_pmtu_v4(self.raw(), net.as_ptr(), mtu) };
    }

    /// Prepares a received packet to be sent on from this host: detached from any local
    /// socket, without receive timestamp and receive-side full checksum.
    #[inline]
    pub fn prepare_resend(&mut self) {
        // SAFETY: Valid packet, exclusively owned.
        unsafe { bindings::skb_prepare_resend(self.raw()) };
    }

    /// Sends a packet whose headers are complete (rewritten in place, sums included) on its
    /// attached route, as upstream's `ip_vs_send_or_cont` does for another host: untracked
    /// ([`Self::set_untracked`]), prepared as [`Self::prepare_resend`] does, through the
    /// LOCAL_OUT hooks of its family (`v6`) to `dst_output`; dropped without a route. Unlike
    /// [`Self::ip_local_out`], nothing is recomputed: one call for all of it.
    ///
    /// `passes`: a hook function whose [`Hooks::pass`] accepts the packet (the caller marked
    /// it so); when it is the only hook at LOCAL_OUT, running the hooks would change nothing
    /// and they are skipped.
    ///
    /// [`Hooks::pass`]: crate::net::netfilter::Hooks::pass
    #[inline]
    pub fn send_prepared(self, net: &Net, v6: bool, passes: HookFn) -> Stolen {
        let pf = if v6 { bindings::NFPROTO_IPV6 } else { bindings::NFPROTO_IPV4 };
        // SAFETY: Ownership of the valid packet passes to the stack; `self` is consumed. The
        // helper drops a packet without a route rather than follow it; `passes` is only
        // compared with the hook list's functions.
        unsafe { bindings::skb_send_prepared(net.as_ptr(), self.raw(), pf as u8, passes.raw()) };
        Stolen(())
    }

    /// Sends an IPv4 packet on its attached route, through the LOCAL_OUT hooks
    /// (`ip_local_out`). The IP total length and header checksum are recomputed.
    #[inline]
    pub fn ip_local_out(self, net: &Net) -> Stolen {
        // SAFETY: Ownership of the valid packet passes to the stack; `self` is consumed.
        unsafe { bindings::ip_local_out(net.as_ptr(), core::ptr::null_mut(), self.raw()) };
        Stolen(())
    }
}
