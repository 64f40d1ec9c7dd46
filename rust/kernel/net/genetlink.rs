// SPDX-License-Identifier: GPL-2.0

//! Generic netlink: a family with its operations, the attributes of a request and the
//! messages of a reply or a dump.
//!
//! A family is a type implementing [`Family`]: its name, version, top-level attribute
//! policy and operations, with a `doit` for requests answered at once and a `dumpit` for
//! dumps (a dump is called again until it adds nothing, with [`Dump::args`] kept between
//! calls). [`Registration`] registers it with the generic netlink core and unregisters it
//! when dropped. Attribute policies are static [`Policy`] tables built at compile time;
//! the core validates the top-level attributes against the family's before a handler runs,
//! and a handler validates a nested attribute with [`Attr::parse_nested`] against another.
//! Validation is the kernel's own (the "deprecated", liberal kind that old families such as
//! IPVS use: unknown attributes are ignored, trailing bytes tolerated), so that errors are
//! the same as a C family's.
//!
//! C headers: [`include/net/genetlink.h`](srctree/include/net/genetlink.h),
//! [`include/net/netlink.h`](srctree/include/net/netlink.h)

use crate::{
    alloc::{flags::GFP_KERNEL, KBox, KVec},
    bindings,
    error::{code::*, to_result, Error, Result},
    net::namespace::Net,
    str::CStr,
    types::Opaque,
    ThisModule,
};
use core::{ffi::c_void, marker::PhantomData, pin::Pin, ptr::NonNull};

/// `EMSGSIZE`: a message has no room for what is added to it.
pub fn emsgsize() -> Error {
    Error::from_errno(-(bindings::EMSGSIZE as i32))
}

fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

/// How an attribute is validated: the kernel's `nla_policy` types that families use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AttrKind {
    /// Anything (`NLA_UNSPEC`).
    Unspec,
    /// Anything of at least the given number of bytes (`NLA_UNSPEC` with a length).
    MinLen(u16),
    /// An 8-bit value (`NLA_U8`).
    U8,
    /// A 16-bit value (`NLA_U16`).
    U16,
    /// A 32-bit value (`NLA_U32`).
    U32,
    /// A 64-bit value (`NLA_U64`).
    U64,
    /// A NUL-terminated string of at most the given number of characters before the NUL
    /// (`NLA_NUL_STRING`).
    NulString(u16),
    /// Bytes, at most the given number (`NLA_BINARY`).
    Binary(u16),
    /// Nested attributes, validated by the handler (`NLA_NESTED` without a policy).
    Nested,
    /// A flag without payload (`NLA_FLAG`).
    Flag,
}

/// One attribute type and how it is validated.
#[derive(Clone, Copy)]
pub struct AttrSpec {
    /// The attribute type.
    pub attr: u16,
    /// How it is validated.
    pub kind: AttrKind,
}

/// A policy table for attribute types `0..N` (`struct nla_policy[N]`), built at compile
/// time: `N` is one more than the highest attribute type.
#[repr(transparent)]
pub struct Policy<const N: usize>([bindings::nla_policy; N]);

// SAFETY: The table is never written after it is built; the kernel only reads it.
unsafe impl<const N: usize> Sync for Policy<N> {}

impl<const N: usize> Policy<N> {
    /// The table of `specs`; types not listed are `NLA_UNSPEC`. A type beyond `N - 1` or a
    /// table of more than 65536 entries fails the build when the table is a constant.
    pub const fn new(specs: &[AttrSpec]) -> Self {
        assert!(N >= 1 && N <= 65536);
        // SAFETY: All-zeroes is a valid `nla_policy` (`NLA_UNSPEC`, no validation).
        let mut t: [bindings::nla_policy; N] = unsafe { core::mem::zeroed() };
        let mut i = 0;
        while i < specs.len() {
            let s = specs[i];
            assert!((s.attr as usize) < N);
            let (ty, len) = match s.kind {
                AttrKind::Unspec => (bindings::NLA_UNSPEC, 0),
                AttrKind::MinLen(n) => (bindings::NLA_UNSPEC, n),
                AttrKind::U8 => (bindings::NLA_U8, 0),
                AttrKind::U16 => (bindings::NLA_U16, 0),
                AttrKind::U32 => (bindings::NLA_U32, 0),
                AttrKind::U64 => (bindings::NLA_U64, 0),
                AttrKind::NulString(n) => (bindings::NLA_NUL_STRING, n),
                AttrKind::Binary(n) => (bindings::NLA_BINARY, n),
                AttrKind::Nested => (bindings::NLA_NESTED, 0),
                AttrKind::Flag => (bindings::NLA_FLAG, 0),
            };
            t[s.attr as usize].type_ = ty as u8;
            t[s.attr as usize].len = len;
            i += 1;
        }
        Self(t)
    }

    /// The highest attribute type.
    pub const fn max_type(&self) -> u16 {
        (N - 1) as u16
    }

    fn as_ptr(&self) -> *const bindings::nla_policy {
        self.0.as_ptr()
    }
}

/// A validated attribute of a request, valid as long as the request (`'a`).
#[derive(Clone, Copy)]
pub struct Attr<'a> {
    nla: NonNull<bindings::nlattr>,
    _p: PhantomData<&'a bindings::nlattr>,
}

impl<'a> Attr<'a> {
    /// # Safety
    ///
    /// `nla` must point to an attribute of a request that the kernel has checked to lie
    /// within its message (`nla_parse` did), valid for `'a`.
    unsafe fn from_raw(nla: *mut bindings::nlattr) -> Option<Self> {
        Some(Self {
            nla: NonNull::new(nla)?,
            _p: PhantomData,
        })
    }

    /// The attribute type, without the nested and byte-order flags.
    pub fn kind(&self) -> u16 {
        // SAFETY: `nla` is a valid attribute (type invariant).
        unsafe { bindings::nla_type(self.nla.as_ptr()) as u16 }
    }

    /// The payload.
    pub fn data(&self) -> &'a [u8] {
        // SAFETY: `nla` is a valid attribute whose header length the parser checked to lie
        // within the message, so its payload is `nla_len` readable bytes for `'a`.
        unsafe {
            let len = bindings::nla_len(self.nla.as_ptr());
            let len = usize::try_from(len).unwrap_or(0);
            core::slice::from_raw_parts(bindings::nla_data(self.nla.as_ptr()).cast::<u8>(), len)
        }
    }

    fn array<const L: usize>(&self) -> Option<[u8; L]> {
        self.data().get(..L)?.try_into().ok()
    }

    /// The payload as a `u8` (`nla_get_u8`); `None` if it is shorter.
    pub fn get_u8(&self) -> Option<u8> {
        self.array::<1>().map(u8::from_ne_bytes)
    }

    /// The payload as a `u16` in host byte order (`nla_get_u16`).
    pub fn get_u16(&self) -> Option<u16> {
        self.array::<2>().map(u16::from_ne_bytes)
    }

    /// The payload as a `u32` in host byte order (`nla_get_u32`).
    pub fn get_u32(&self) -> Option<u32> {
        self.array::<4>().map(u32::from_ne_bytes)
    }

    /// The payload as a `u64` in host byte order (`nla_get_u64`).
    pub fn get_u64(&self) -> Option<u64> {
        self.array::<8>().map(u64::from_ne_bytes)
    }

    /// The payload up to its first NUL (all of it if there is none).
    pub fn get_str(&self) -> &'a [u8] {
        let d = self.data();
        let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
        d.get(..end).unwrap_or(d)
    }

    /// Parses the nested attributes of this one against `policy`, leniently, as
    /// `nla_parse_nested_deprecated` does (the errno is the kernel's).
    pub fn parse_nested<const N: usize>(&self, policy: &'static Policy<N>) -> Result<Attrs<'a, N>> {
        let mut tb = [core::ptr::null_mut(); N];
        // SAFETY: `tb` has room for `max_type() + 1` pointers; `nla` is a valid attribute;
        // `policy` has `max_type() + 1` entries.
        to_result(unsafe {
            bindings::nla_parse_nested_deprecated(
                tb.as_mut_ptr(),
                policy.max_type() as i32,
                self.nla.as_ptr(),
                policy.as_ptr(),
            )
        })?;
        Ok(Attrs { tb, _p: PhantomData })
    }

    /// As [`Attr::parse_nested`], reporting to the request's extended ACK (a policy failure,
    /// bytes left over), as upstream does for the nests it parses with `info->extack`.
    pub fn parse_nested_reporting<const N: usize>(
        &self,
        policy: &'static Policy<N>,
        info: &Info<'_>,
    ) -> Result<Attrs<'a, N>> {
        let mut tb = [core::ptr::null_mut(); N];
        // SAFETY: As in `parse_nested`; `info` is the request's, valid during the call.
        to_result(unsafe {
            bindings::genl_parse_nested_reporting(
                tb.as_mut_ptr(),
                policy.max_type() as i32,
                self.nla.as_ptr(),
                policy.as_ptr(),
                info.info.as_ptr(),
            )
        })?;
        Ok(Attrs { tb, _p: PhantomData })
    }
}

/// Attributes parsed against a policy of `N` types, valid for `'a`.
pub struct Attrs<'a, const N: usize> {
    tb: [*mut bindings::nlattr; N],
    _p: PhantomData<&'a bindings::nlattr>,
}

impl<'a, const N: usize> Attrs<'a, N> {
    /// The attribute of type `t`, if the request has it.
    pub fn get(&self, t: u16) -> Option<Attr<'a>> {
        let p = *self.tb.get(usize::from(t))?;
        // SAFETY: The parser filled `tb` with attributes it validated, inside the request
        // that lives for `'a`.
        unsafe { Attr::from_raw(p) }
    }
}

/// Where an attribute goes: a reply or a dump's message under construction.
pub struct MsgBuilder<'a> {
    skb: NonNull<bindings::sk_buff>,
    _p: PhantomData<&'a mut bindings::sk_buff>,
}

impl MsgBuilder<'_> {
    /// Appends attribute `t` with payload `data` (`nla_put`); `EMSGSIZE` when it does not
    /// fit.
    pub fn put(&mut self, t: u16, data: &[u8]) -> Result {
        let len = i32::try_from(data.len()).map_err(|_| emsgsize())?;
        // SAFETY: `skb` is the message being built; `data` is valid for `len` bytes.
        let r = unsafe {
            bindings::nla_put(self.skb.as_ptr(), t.into(), len, data.as_ptr().cast::<c_void>())
        };
        if r != 0 {
            return Err(emsgsize());
        }
        Ok(())
    }

    /// Appends a `u8` attribute.
    pub fn put_u8(&mut self, t: u16, v: u8) -> Result {
        self.put(t, &[v])
    }

    /// Appends a `u16` attribute in host byte order.
    pub fn put_u16(&mut self, t: u16, v: u16) -> Result {
        self.put(t, &v.to_ne_bytes())
    }

    /// Appends a `u32` attribute in host byte order.
    pub fn put_u32(&mut self, t: u16, v: u32) -> Result {
        self.put(t, &v.to_ne_bytes())
    }

    /// Appends a `u64` attribute in host byte order, aligned to 64 bits with a `pad`
    /// attribute where needed (`nla_put_u64_64bit`).
    pub fn put_u64(&mut self, t: u16, v: u64, pad: u16) -> Result {
        let b = v.to_ne_bytes();
        // SAFETY: `skb` is the message being built; `b` is valid for its 8 bytes.
        let r = unsafe {
            bindings::nla_put_64bit(
                self.skb.as_ptr(),
                t.into(),
                b.len() as i32,
                b.as_ptr().cast::<c_void>(),
                pad.into(),
            )
        };
        if r != 0 {
            return Err(emsgsize());
        }
        Ok(())
    }

    /// Appends a NUL-terminated string attribute (`nla_put_string`).
    pub fn put_str(&mut self, t: u16, s: &CStr) -> Result {
        self.put(t, s.as_bytes_with_nul())
    }

    /// Appends a nest of attributes `t` (`nla_nest_start_noflag`: without `NLA_F_NESTED`,
    /// as the old families send) filled by `f`; when `f` fails, the nest is removed again
    /// and its error returned.
    pub fn nest(&mut self, t: u16, f: impl FnOnce(&mut Self) -> Result) -> Result {
        // SAFETY: `skb` is the message being built.
        let start = unsafe { bindings::nla_nest_start_noflag(self.skb.as_ptr(), t.into()) };
        if start.is_null() {
            return Err(emsgsize());
        }
        match f(self) {
            Ok(()) => {
                // SAFETY: `start` is the nest opened above in this message, still open.
                unsafe { bindings::nla_nest_end(self.skb.as_ptr(), start) };
                Ok(())
            }
            Err(e) => {
                // SAFETY: As above; cancelling trims the message back to `start`.
                unsafe { bindings::nla_nest_cancel(self.skb.as_ptr(), start) };
                Err(e)
            }
        }
    }
}

/// A `doit` request (`struct genl_info`).
pub struct Info<'a> {
    info: NonNull<bindings::genl_info>,
    max_attr: u16,
    _p: PhantomData<&'a bindings::genl_info>,
}

impl<'a> Info<'a> {
    /// The namespace of the sender's socket.
    pub fn net(&self) -> &'a Net {
        // SAFETY: `info` is valid during the call, and so is its namespace.
        unsafe { Net::from_raw(bindings::genl_info_net(self.info.as_ptr())) }
    }

    /// The command.
    pub fn cmd(&self) -> u8 {
        // SAFETY: `info` and its generic netlink header are valid during the call.
        unsafe { (*(*self.info.as_ptr()).genlhdr).cmd }
    }

    /// The top-level attribute `t`, validated against the family's policy.
    pub fn attr(&self, t: u16) -> Option<Attr<'a>> {
        if t > self.max_attr {
            return None;
        }
        // SAFETY: The core parsed the request into `attrs`, an array of `maxattr + 1`
        // entries, before calling `doit`; `t` is within it.
        unsafe {
            let attrs = (*self.info.as_ptr()).attrs;
            if attrs.is_null() {
                return None;
            }
            Attr::from_raw(*attrs.add(usize::from(t)))
        }
    }

    /// Sends a reply to the sender with command `cmd`, its attributes written by `f`
    /// (`genlmsg_new`, `genlmsg_put_reply`, `genlmsg_reply`). `ENOMEM` if no message can be
    /// allocated; `f`'s error (`EMSGSIZE` when the attributes outgrow a page) is returned
    /// and nothing is sent.
    pub fn reply(&self, cmd: u8, f: impl FnOnce(&mut MsgBuilder<'_>) -> Result) -> Result {
        // SAFETY: Allocates a fresh message of a page (`NLMSG_GOODSIZE`).
        let skb = unsafe { bindings::genlmsg_new_goodsize(GFP_KERNEL.as_raw()) };
        let skb = NonNull::new(skb).ok_or(ENOMEM)?;
        // SAFETY: `skb` is a new message; `info` and its family are valid during the call.
        let hdr = unsafe {
            bindings::genlmsg_put_reply(skb.as_ptr(), self.info.as_ptr(), (*self.info.as_ptr()).family, cmd)
        };
        let mut b = MsgBuilder { skb, _p: PhantomData };
        let r = if hdr.is_null() { Err(emsgsize()) } else { f(&mut b) };
        if let Err(e) = r {
            // SAFETY: `skb` was not sent; it is freed once.
            unsafe { bindings::nlmsg_free(skb.as_ptr()) };
            return Err(e);
        }
        // SAFETY: `hdr` is the header put above. `genlmsg_reply` consumes `skb`.
        to_result(unsafe {
            bindings::genlmsg_end(skb.as_ptr(), hdr);
            bindings::genlmsg_reply(skb.as_ptr(), self.info.as_ptr())
        })
    }
}

/// One call of a dump (`struct netlink_callback` and the message it fills).
pub struct Dump<'a> {
    skb: NonNull<bindings::sk_buff>,
    cb: NonNull<bindings::netlink_callback>,
    _p: PhantomData<&'a mut bindings::netlink_callback>,
}

impl<'a> Dump<'a> {
    /// The namespace of the requesting socket.
    pub fn net(&self) -> &'a Net {
        // SAFETY: `cb` and its socket are valid during the call, and so is the namespace.
        unsafe { Net::from_raw(bindings::genl_dump_net(self.cb.as_ptr())) }
    }

    /// The command.
    pub fn cmd(&self) -> u8 {
        // SAFETY: `cb` and its request are valid during the call.
        unsafe { bindings::genl_dump_cmd(self.cb.as_ptr()) }
    }

    /// The dump's state kept between its calls (`cb->args`), zero at the first call.
    pub fn args(&mut self) -> &mut [isize; 6] {
        // SAFETY: `cb` is valid and exclusively ours during the call.
        unsafe { &mut (*self.cb.as_ptr()).__bindgen_anon_1.args }
    }

    /// Parses the request's attributes against `policy`, leniently, as
    /// `nlmsg_parse_deprecated` does.
    pub fn parse_request<const N: usize>(&self, policy: &'static Policy<N>) -> Result<Attrs<'a, N>> {
        let mut tb = [core::ptr::null_mut(); N];
        // SAFETY: `tb` has room for `max_type() + 1` pointers; `cb` holds the request.
        to_result(unsafe {
            bindings::genl_dump_parse(
                self.cb.as_ptr(),
                tb.as_mut_ptr(),
                policy.max_type() as i32,
                policy.as_ptr(),
            )
        })?;
        Ok(Attrs { tb, _p: PhantomData })
    }

    /// Adds one message with command `cmd` (`NLM_F_MULTI`) to the dump, its attributes
    /// written by `f`. `EMSGSIZE` when it does not fit (the dump's buffer is full: stop,
    /// and continue at this entry in the next call); the partial message is removed.
    pub fn entry(&mut self, cmd: u8, f: impl FnOnce(&mut MsgBuilder<'_>) -> Result) -> Result {
        // SAFETY: `skb` is the dump's message buffer and `cb` its callback, set up by the
        // generic netlink core with the family the dump runs for.
        let hdr = unsafe { bindings::genl_dump_put(self.skb.as_ptr(), self.cb.as_ptr(), cmd) };
        if hdr.is_null() {
            return Err(emsgsize());
        }
        let mut b = MsgBuilder {
            skb: self.skb,
            _p: PhantomData,
        };
        match f(&mut b) {
            Ok(()) => {
                // SAFETY: `hdr` is the header put above in `skb`.
                unsafe { bindings::genlmsg_end(self.skb.as_ptr(), hdr) };
                Ok(())
            }
            Err(e) => {
                // SAFETY: As above; cancelling trims `skb` back to before `hdr`.
                unsafe { bindings::genlmsg_cancel(self.skb.as_ptr(), hdr) };
                Err(e)
            }
        }
    }
}

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    /// Anyone.
    Any,
    /// `CAP_NET_ADMIN` in the initial user namespace (`GENL_ADMIN_PERM`).
    Admin,
    /// `CAP_NET_ADMIN` in the user namespace owning the socket's network namespace
    /// (`GENL_UNS_ADMIN_PERM`).
    NsAdmin,
}

/// One operation of a family.
#[derive(Clone, Copy)]
pub struct Op {
    /// The command.
    pub cmd: u8,
    /// Who may call it.
    pub perm: Perm,
    /// Whether [`Family::doit`] handles it.
    pub doit: bool,
    /// Whether [`Family::dumpit`] handles it.
    pub dumpit: bool,
    /// Validate leniently, as the kernel does for families older than strict validation
    /// (`GENL_DONT_VALIDATE_STRICT | GENL_DONT_VALIDATE_DUMP`).
    pub lenient: bool,
}

/// A generic netlink family.
#[crate::macros::vtable]
pub trait Family: Sized + Sync + 'static {
    /// The family name, at most 15 bytes.
    const NAME: &'static CStr;
    /// The version.
    const VERSION: u32;
    /// The highest top-level attribute type.
    const MAX_ATTR: u16;
    /// The top-level policy, `MAX_ATTR + 1` entries (as a slice of a [`Policy`]).
    fn policy() -> &'static [PolicyEntry];
    /// The operations; commands below [`Family::RESV_START_OP`] must come from this list.
    const OPS: &'static [Op];
    /// The first command number for which unknown flags are rejected (`resv_start_op`).
    const RESV_START_OP: u8;
    /// Whether the family works in every network namespace (`netnsok`).
    const NETNS_OK: bool;

    /// Handles a request of an operation with `doit`.
    fn doit(_info: &Info<'_>) -> Result {
        Err(eopnotsupp())
    }

    /// One call of a dump of an operation with `dumpit`: adds entries with
    /// [`Dump::entry`] until it runs out of room or of entries; the dump ends when a call
    /// adds nothing.
    fn dumpit(_dump: &mut Dump<'_>) -> Result {
        Err(eopnotsupp())
    }
}

/// An entry of a policy table, as [`Family::policy`] returns them.
#[repr(transparent)]
pub struct PolicyEntry(bindings::nla_policy);

// SAFETY: Read-only after construction, as [`Policy`].
unsafe impl Sync for PolicyEntry {}

impl<const N: usize> Policy<N> {
    /// The table as entries, for [`Family::policy`].
    pub const fn entries(&self) -> &[PolicyEntry] {
        // SAFETY: `PolicyEntry` is a transparent wrapper of `nla_policy`.
        unsafe { core::slice::from_raw_parts(self.0.as_ptr().cast::<PolicyEntry>(), N) }
    }
}

/// The registered family: the `genl_family` first, so that the core's pointer to it is a
/// pointer to this.
#[repr(C)]
struct Inner {
    family: Opaque<bindings::genl_family>,
    ops: KVec<bindings::genl_small_ops>,
}

/// A registered family; dropping it unregisters the family (waiting for running requests;
/// a running dump holds a reference on the module).
pub struct Registration<F: Family> {
    inner: Pin<KBox<Inner>>,
    _p: PhantomData<F>,
}

// SAFETY: The registration only holds kernel-managed data; the handlers are `Sync`.
unsafe impl<F: Family> Send for Registration<F> {}
// SAFETY: As above.
unsafe impl<F: Family> Sync for Registration<F> {}

impl<F: Family> Registration<F> {
    /// Registers family `F` (`genl_register_family`).
    pub fn register(module: &'static ThisModule) -> Result<Self> {
        let name = F::NAME.as_bytes_with_nul();
        let policy = F::policy();
        if name.len() > bindings::GENL_NAMSIZ as usize
            || policy.len() != usize::from(F::MAX_ATTR) + 1
            || F::OPS.len() > usize::from(u8::MAX)
        {
            return Err(EINVAL);
        }
        let mut ops = KVec::with_capacity(F::OPS.len(), GFP_KERNEL)?;
        for op in F::OPS {
            // SAFETY: All-zeroes is a valid `genl_small_ops` (no handlers, no flags).
            let mut o: bindings::genl_small_ops = unsafe { core::mem::zeroed() };
            o.cmd = op.cmd;
            o.flags = match op.perm {
                Perm::Any => 0,
                Perm::Admin => bindings::GENL_ADMIN_PERM as u8,
                Perm::NsAdmin => bindings::GENL_UNS_ADMIN_PERM as u8,
            };
            if op.lenient {
                o.validate = (bindings::genl_validate_flags_GENL_DONT_VALIDATE_STRICT
                    | bindings::genl_validate_flags_GENL_DONT_VALIDATE_DUMP) as u8;
            }
            if op.doit {
                o.doit = Some(Self::doit_callback);
            }
            if op.dumpit {
                o.dumpit = Some(Self::dumpit_callback);
            }
            ops.push(o, GFP_KERNEL)?;
        }
        let inner = KBox::pin(
            Inner {
                // SAFETY: All-zeroes is a valid unregistered `genl_family`.
                family: Opaque::new(unsafe { core::mem::zeroed() }),
                ops,
            },
            GFP_KERNEL,
        )?;
        let fam = inner.family.get();
        // SAFETY: `fam` is ours and not registered yet; the name fits (checked above); the
        // ops and the policy outlive the registration (heap / static).
        unsafe {
            for (d, s) in (*fam).name.iter_mut().zip(name.iter()) {
                *d = *s as _;
            }
            (*fam).version = F::VERSION;
            (*fam).maxattr = F::MAX_ATTR.into();
            (*fam).policy = policy.as_ptr().cast::<bindings::nla_policy>();
            (*fam).set_netnsok(F::NETNS_OK as u8);
            (*fam).set_parallel_ops(1);
            (*fam).small_ops = inner.ops.as_ptr();
            (*fam).n_small_ops = inner.ops.len() as u8;
            (*fam).resv_start_op = F::RESV_START_OP;
            (*fam).module = module.as_ptr();
        }
        // SAFETY: `fam` is fully set up and pinned until unregistered in `drop`.
        to_result(unsafe { bindings::genl_register_family(fam) })?;
        Ok(Self {
            inner,
            _p: PhantomData,
        })
    }

    unsafe extern "C" fn doit_callback(
        _skb: *mut bindings::sk_buff,
        info: *mut bindings::genl_info,
    ) -> i32 {
        let Some(info) = NonNull::new(info) else {
            return EINVAL.to_errno();
        };
        let info = Info {
            info,
            max_attr: F::MAX_ATTR,
            _p: PhantomData,
        };
        match F::doit(&info) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    unsafe extern "C" fn dumpit_callback(
        skb: *mut bindings::sk_buff,
        cb: *mut bindings::netlink_callback,
    ) -> i32 {
        let (Some(skb), Some(cb)) = (NonNull::new(skb), NonNull::new(cb)) else {
            return EINVAL.to_errno();
        };
        let mut dump = Dump {
            skb,
            cb,
            _p: PhantomData,
        };
        match F::dumpit(&mut dump).or_else(|e| if e == emsgsize() { Ok(()) } else { Err(e) }) {
            // A full buffer ends this call, not the dump.
            Ok(()) => {
                // SAFETY: `skb` is the dump's buffer, valid during the call.
                let len = unsafe { bindings::skb_len(skb.as_ptr()) };
                i32::try_from(len).unwrap_or(i32::MAX)
            }
            Err(e) => e.to_errno(),
        }
    }
}

impl<F: Family> Drop for Registration<F> {
    fn drop(&mut self) {
        // SAFETY: Registered in `register`; unregistering waits for running requests.
        unsafe { bindings::genl_unregister_family(self.inner.family.get()) };
    }
}
