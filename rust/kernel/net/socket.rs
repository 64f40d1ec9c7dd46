// SPDX-License-Identifier: GPL-2.0

//! Kernel UDP sockets for multicast (`struct socket` created with `sock_create_kern`).
//!
//! C header: [`include/linux/net.h`](srctree/include/linux/net.h)

use crate::{
    bindings,
    error::{to_result, Result},
    kthread::Ctx,
    net::namespace::Net,
    str::CStr,
};
use core::ptr::{self, NonNull};

/// Where a multicast socket sends to or listens on.
pub struct McastAddr<'a> {
    /// IPv6 (else IPv4, in the first 4 bytes of `group`).
    pub v6: bool,
    /// The multicast group.
    pub group: &'a [u8; 16],
    /// The UDP port.
    pub port: u16,
    /// The device's index (see [`ifindex`]).
    pub ifindex: i32,
}

/// A kernel UDP socket of a network namespace, sending to or receiving from one multicast
/// group. It holds no reference on the namespace (as every kernel socket), so it must be
/// released before the namespace goes: keep it in that namespace's state.
///
/// Released on drop (`sock_release`), which may sleep: drop it in process context.
pub struct McastSocket {
    sock: NonNull<bindings::socket>,
}

// SAFETY: A kernel socket may be used and released from any task; the socket layer locks.
unsafe impl Send for McastSocket {}
// SAFETY: Sending and receiving take the socket lock.
unsafe impl Sync for McastSocket {}

impl McastSocket {
    /// A socket that sends to `to` out of its device (upstream IPVS's sending socket): no
    /// loopback of its own messages, multicast TTL or hop limit `ttl`, fragmentation allowed,
    /// a send buffer of `sock_size` bytes (0: the default), and for IPv4 bound to the
    /// device's primary address (`EADDRNOTAVAIL` if it has none).
    pub fn sender(net: &Net, to: &McastAddr<'_>, ttl: u8, sock_size: i32) -> Result<Self> {
        let mut sock = ptr::null_mut();
        // SAFETY: `net` is live; `group` points to 16 readable bytes; `sock` is written on
        // success only.
        to_result(unsafe {
            bindings::mcast_sock_sender(
                net.as_ptr(),
                to.v6,
                to.group.as_ptr(),
                to.port,
                to.ifindex,
                ttl,
                sock_size,
                &mut sock,
            )
        })?;
        Ok(Self { sock: NonNull::new(sock).ok_or(crate::error::code::ENOMEM)? })
    }

    /// A socket bound to `on` (address reuse allowed) that has joined the group on its
    /// device, with a receive buffer of `sock_size` bytes (0: the default).
    pub fn receiver(net: &Net, on: &McastAddr<'_>, sock_size: i32) -> Result<Self> {
        let mut sock = ptr::null_mut();
        // SAFETY: As in `sender`.
        to_result(unsafe {
            bindings::mcast_sock_receiver(
                net.as_ptr(),
                on.v6,
                on.group.as_ptr(),
                on.port,
                on.ifindex,
                sock_size,
                &mut sock,
            )
        })?;
        Ok(Self { sock: NonNull::new(sock).ok_or(crate::error::code::ENOMEM)? })
    }

    /// Sends `data` as one datagram without blocking: the length sent, or `EAGAIN` when the
    /// send buffer is full.
    pub fn send(&self, data: &[u8]) -> Result<usize> {
        // SAFETY: The socket is live; `data` is readable for its length.
        let r = unsafe { bindings::sock_send_nowait(self.sock.as_ptr(), data.as_ptr().cast(), data.len()) };
        to_result(r)?;
        Ok(r as usize)
    }

    /// Receives one datagram into `buf` without blocking: its length (truncated to
    /// `buf.len()`), or `EAGAIN` when none is queued.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        // SAFETY: The socket is live; `buf` is writable for its length.
        let r = unsafe { bindings::sock_recv_nowait(self.sock.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        to_result(r)?;
        Ok(r as usize)
    }

    /// From a kernel thread: sleeps until a datagram is queued, the thread is asked to stop,
    /// or `timeout` jiffies passed.
    pub fn wait_readable(&self, _ctx: &Ctx, timeout: u64) {
        let t = timeout.min(::ffi::c_long::MAX as u64) as ::ffi::c_long;
        // SAFETY: The socket is live; `Ctx` proves we run in a kernel thread.
        unsafe { bindings::sock_kthread_wait(self.sock.as_ptr(), false, t) };
    }

    /// From a kernel thread: sleeps until the send buffer has room, the thread is asked to
    /// stop, or `timeout` jiffies passed.
    pub fn wait_writable(&self, _ctx: &Ctx, timeout: u64) {
        let t = timeout.min(::ffi::c_long::MAX as u64) as ::ffi::c_long;
        // SAFETY: As in `wait_readable`.
        unsafe { bindings::sock_kthread_wait(self.sock.as_ptr(), true, t) };
    }
}

impl Drop for McastSocket {
    fn drop(&mut self) {
        // SAFETY: We own the socket; nothing uses it after this.
        unsafe { bindings::sock_release(self.sock.as_ptr()) };
    }
}

/// The index of device `name` in `net`, or `ENODEV`.
pub fn ifindex(net: &Net, name: &CStr) -> Result<i32> {
    // SAFETY: `net` is live and `name` NUL-terminated.
    let r = unsafe { bindings::net_dev_ifindex(net.as_ptr(), name.as_char_ptr()) };
    to_result(r)?;
    Ok(r)
}

/// The MTU of device `ifindex` in `net`, or `ENODEV`.
pub fn dev_mtu(net: &Net, ifindex: i32) -> Result<u32> {
    // SAFETY: `net` is live.
    let r = unsafe { bindings::net_dev_mtu(net.as_ptr(), ifindex) };
    to_result(r)?;
    Ok(r as u32)
}
