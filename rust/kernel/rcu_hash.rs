// SPDX-License-Identifier: GPL-2.0

//! Resizable hash tables of slab-allocated entries, read under RCU without locks.
//!
//! A [`HashTable`] keeps entries of type `T` in singly linked chains. Readers look entries up
//! inside an RCU read-side critical section and get references valid for that section;
//! writers insert and unlink under one of [`LOCKS`] bottom-half-safe spinlocks. The lock of
//! an entry is chosen by the low bits of its hash, which every table size shares, so the
//! same lock covers an entry in the table it is in and in the one it moves to on a resize.
//!
//! The table grows and shrinks in process context ([`HashTable::resize`]): a new bucket
//! array is announced, a grace period lets every reader see it, then the entries move
//! bucket by bucket, each move inside a sequence count that makes readers of the old
//! bucket try again, and new entries go straight to the new array. A lookup therefore never
//! misses an entry that is in the table, and no packet waits for more than one bucket's
//! move. The old array is freed after a second grace period.
//!
//! An unlinked entry is freed after a grace period. Entries may hold counted references to
//! other entries of the same table ([`EntryRef`], kept in a [`RefSlot`]), which keep those
//! allocated after they leave the table. Unlinked entries are freed in batches, one RCU
//! callback for up to [`BATCH`] of them, so emptying a large table costs few callbacks, and
//! each callback gives its entries back to the slab allocator in bulk. A table nothing else
//! reaches any more is emptied without locks, chain by chain ([`HashTable::drain`]).
//!
//! C header: [`include/linux/rculist.h`](srctree/include/linux/rculist.h) (the chains),
//! [`include/linux/seqlock.h`](srctree/include/linux/seqlock.h) (the moves)

use crate::{
    alloc::{
        flags::{GFP_ATOMIC, GFP_KERNEL},
        KBox, KVec, VVec,
    },
    bindings,
    error::{code::*, Result},
    init::InPlaceInit,
    new_mutex, new_spinlock_bh,
    slab::KmemCache,
    str::CStr,
    sync::{rcu, Arc, Mutex, SpinLockBh},
};
use core::{
    ops::Deref,
    pin::Pin,
    ptr::{self, NonNull},
    sync::atomic::{fence, AtomicPtr, AtomicU32, Ordering::*},
};

/// Number of bucket locks (and sequence counts) of a table; also its smallest size.
pub const LOCKS: usize = 256;

/// Unlinked entries freed by one RCU callback, at most.
pub const BATCH: u32 = 256;

/// Buckets a process-context walk covers between two chances for the scheduler to run.
const RESCHED_BUCKETS: usize = 256;

/// An entry: the value and the table's bookkeeping, in one slab object.
///
/// The link comes first, then the value, so that a value laid out with its lookup keys first
/// puts them in the same cache line as the link.
#[repr(C)]
pub struct Entry<T> {
    next: AtomicPtr<Entry<T>>,
    value: T,
    /// Bit 0 while the entry is linked, plus 2 per [`EntryRef`]. Whoever brings it to 0
    /// retires the entry.
    refs: AtomicU32,
    hash: u32,
    /// Link of the list of retired entries waiting for a grace period.
    retired: AtomicPtr<Entry<T>>,
}

impl<T> Deref for Entry<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Entry<T> {
    /// The hash the entry was inserted with.
    #[inline]
    pub fn hash(&self) -> u32 {
        self.hash
    }

    /// Number of [`EntryRef`]s to this entry.
    #[inline]
    pub fn ref_count(&self) -> u32 {
        self.refs.load(Relaxed) >> 1
    }

    /// Whether the entry is still in its table.
    #[inline]
    pub fn is_linked(&self) -> bool {
        self.refs.load(Relaxed) & 1 != 0
    }
}

/// What a table needs of its values.
pub trait Item: Send + Sync + Sized {
    /// Takes out the reference to another entry that this value holds, if any; called once
    /// the entry is unlinked, so that the table releases it.
    fn take_ref(&self) -> Option<EntryRef<Self>> {
        None
    }
}

/// A counted reference to an entry of a table: the entry stays allocated while it exists.
///
/// Give it back with [`HashTable::release`]; dropping it otherwise keeps the entry allocated
/// for good.
pub struct EntryRef<T> {
    ptr: NonNull<Entry<T>>,
}

// SAFETY: An `EntryRef` only gives shared access to a `T: Sync` entry.
unsafe impl<T: Send + Sync> Send for EntryRef<T> {}
// SAFETY: As above.
unsafe impl<T: Send + Sync> Sync for EntryRef<T> {}

impl<T> Deref for EntryRef<T> {
    type Target = Entry<T>;

    fn deref(&self) -> &Entry<T> {
        // SAFETY: The counted reference keeps the entry allocated.
        unsafe { self.ptr.as_ref() }
    }
}

/// A slot holding an [`EntryRef`] or nothing; readers see the entry under RCU.
///
/// # Invariants
///
/// `ptr` is null or the pointer of an [`EntryRef`] the slot owns.
pub struct RefSlot<T> {
    ptr: AtomicPtr<Entry<T>>,
}

// SAFETY: The slot hands out shared references to `T: Sync` entries only.
unsafe impl<T: Send + Sync> Send for RefSlot<T> {}
// SAFETY: As above.
unsafe impl<T: Send + Sync> Sync for RefSlot<T> {}

impl<T> RefSlot<T> {
    /// A slot holding `r`.
    pub fn new(r: Option<EntryRef<T>>) -> Self {
        // INVARIANT: The slot owns the reference from now on.
        Self { ptr: AtomicPtr::new(r.map_or(ptr::null_mut(), |r| r.ptr.as_ptr())) }
    }

    /// The entry referenced, valid for the read-side critical section `_g`.
    #[inline]
    pub fn get<'a>(&'a self, _g: &'a rcu::Guard) -> Option<&'a Entry<T>> {
        let p = self.ptr.load(Acquire);
        // SAFETY: While the slot holds the reference the entry is allocated; once taken out
        // and released, it is freed only after a grace period that starts after the take, so
        // after the read-side critical section `_g` that may have loaded the pointer before.
        unsafe { p.as_ref() }
    }

    /// Takes the reference out.
    pub fn take(&self) -> Option<EntryRef<T>> {
        // INVARIANT: Ownership moves to the returned reference.
        NonNull::new(self.ptr.swap(ptr::null_mut(), AcqRel)).map(|ptr| EntryRef { ptr })
    }
}

/// The slab cache entries of one type come from; tables share it.
pub struct Pool<T> {
    cache: KmemCache<Entry<T>>,
}

impl<T: Item> Pool<T> {
    /// Creates the cache, named `name` in `/proc/slabinfo`.
    pub fn new(name: &'static CStr) -> Result<Arc<Self>> {
        Ok(Arc::new(Self { cache: KmemCache::new(name, 0)? }, GFP_KERNEL)?)
    }
}

impl<T> Drop for Pool<T> {
    fn drop(&mut self) {
        // Every table using the pool is gone and has queued its last batch: let the batches
        // free their entries before the cache goes.
        rcu::barrier();
    }
}

/// A place for the pool the tables of a module share, meant for a `static`: filled at
/// module load, emptied at unload, read by whoever builds a table in between.
///
/// # Invariants
///
/// `ptr` is null or comes from [`Arc::into_raw`] and is owned by the slot.
pub struct PoolSlot<T> {
    ptr: AtomicPtr<Pool<T>>,
}

// SAFETY: The slot holds an `Arc<Pool<T>>`, shareable when `T` is `Send + Sync`.
unsafe impl<T: Send + Sync> Send for PoolSlot<T> {}
// SAFETY: As above; the slot itself is an atomic pointer.
unsafe impl<T: Send + Sync> Sync for PoolSlot<T> {}

impl<T: Item> PoolSlot<T> {
    /// An empty slot.
    pub const fn new() -> Self {
        Self { ptr: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Fills the slot; `EBUSY` if it holds a pool already.
    pub fn install(&self, pool: Arc<Pool<T>>) -> Result {
        let p = Arc::into_raw(pool).cast_mut();
        match self.ptr.compare_exchange(ptr::null_mut(), p, AcqRel, Acquire) {
            // INVARIANT: The slot owns the reference from now on.
            Ok(_) => Ok(()),
            Err(_) => {
                // SAFETY: `p` came from `Arc::into_raw` above and was not stored.
                drop(unsafe { Arc::from_raw(p) });
                Err(EBUSY)
            }
        }
    }

    /// A reference to the pool, if the slot holds one.
    pub fn get(&self) -> Option<Arc<Pool<T>>> {
        let _g = rcu::read_lock();
        let p = self.ptr.load(Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: An owned `Arc` (type invariants); `take` drops it only a grace period
        // after removing it, so it is live for this read-side critical section.
        Some(unsafe { crate::sync::ArcBorrow::from_raw(p) }.into())
    }

    /// Empties the slot, dropping its reference after a grace period. Process context.
    pub fn take(&self) {
        let p = self.ptr.swap(ptr::null_mut(), AcqRel);
        if !p.is_null() {
            rcu::synchronize_rcu();
            // SAFETY: Owned by the slot until the swap above; no `get` still reads it.
            drop(unsafe { Arc::from_raw(p) });
        }
    }
}

/// One bucket array.
struct Tab<T> {
    heads: VVec<AtomicPtr<Entry<T>>>,
    aux: VVec<AtomicU32>,
    mask: u32,
    bits: u32,
    /// During a resize, the array entries move to; null otherwise.
    next: AtomicPtr<Tab<T>>,
}

impl<T> Tab<T> {
    fn new(bits: u32, aux: u32) -> Result<KBox<Self>> {
        let size = 1usize.checked_shl(bits).ok_or(EINVAL)?;
        let mut heads = VVec::with_capacity(size, GFP_KERNEL)?;
        let mut auxv = VVec::with_capacity(size, GFP_KERNEL)?;
        for _ in 0..size {
            heads.push(AtomicPtr::new(ptr::null_mut()), GFP_KERNEL)?;
            auxv.push(AtomicU32::new(aux), GFP_KERNEL)?;
        }
        Ok(KBox::new(
            Self { heads, aux: auxv, mask: (size - 1) as u32, bits, next: AtomicPtr::new(ptr::null_mut()) },
            GFP_KERNEL,
        )?)
    }

    fn head(&self, h: u32) -> &AtomicPtr<Entry<T>> {
        // `mask` is the length minus one.
        &self.heads[(h & self.mask) as usize]
    }

    #[inline(always)]
    fn find<'a>(&'a self, h: u32, f: &impl Fn(&T) -> bool) -> Option<&'a Entry<T>> {
        let mut p = self.head(h).load(Acquire);
        // SAFETY: Entries reachable from a bucket are freed only a grace period after they
        // are unlinked; the callers hold a read-side critical section for `'a`.
        while let Some(e) = unsafe { p.as_ref() } {
            if e.hash == h && f(&e.value) {
                return Some(e);
            }
            p = e.next.load(Acquire);
        }
        None
    }

    /// Whether `target` is in its bucket here (its lock held).
    fn contains(&self, target: &Entry<T>) -> bool {
        let mut p = self.head(target.hash).load(Relaxed);
        // SAFETY: Linked entries are live while their lock is held.
        while let Some(e) = unsafe { p.as_ref() } {
            if ptr::eq(e, target) {
                return true;
            }
            p = e.next.load(Relaxed);
        }
        false
    }

    /// Unlinks `target` from its bucket here (its lock held); false if it is not there.
    fn unlink_locked(&self, target: &Entry<T>) -> bool {
        let mut link = self.head(target.hash);
        loop {
            let p = link.load(Relaxed);
            // SAFETY: Linked entries are live while their lock is held.
            let Some(e) = (unsafe { p.as_ref() }) else {
                return false;
            };
            if ptr::eq(e, target) {
                link.store(e.next.load(Relaxed), Release);
                return true;
            }
            link = &e.next;
        }
    }
}

/// Chain lengths of a table: buckets with 0, 1, ... 6 and 7 or more entries.
pub type Histogram = [u32; 8];

/// A resizable RCU hash table of `T`.
///
/// # Invariants
///
/// `cur` comes from [`KBox::into_raw`] and is owned; its `next`, when set, too (until the
/// resize that set it installs it as `cur`). Every linked entry is in the bucket of its hash
/// of `cur` or of `cur.next`, allocated from `pool`, with bit 0 of `refs` set.
pub struct HashTable<T: Item> {
    cur: AtomicPtr<Tab<T>>,
    locks: KVec<Pin<KBox<SpinLockBh<()>>>>,
    seq: KVec<AtomicU32>,
    count: AtomicU32,
    resizing: Pin<KBox<Mutex<()>>>,
    retired: AtomicPtr<Entry<T>>,
    n_retired: AtomicU32,
    pool: Arc<Pool<T>>,
}

// SAFETY: Shared state is atomics and locks; entries are `Send + Sync`.
unsafe impl<T: Item> Send for HashTable<T> {}
// SAFETY: As above.
unsafe impl<T: Item> Sync for HashTable<T> {}

/// The entries freed by one RCU callback.
#[repr(C)]
struct Batch<T> {
    head: bindings::callback_head,
    first: *mut Entry<T>,
    cache: *mut bindings::kmem_cache,
}

/// Entries a batch callback hands to the slab allocator at once.
const FREE_BULK: usize = 32;

unsafe extern "C" fn free_batch<T>(head: *mut bindings::callback_head) {
    // CAST: `Batch` is `repr(C)` with the head first.
    // SAFETY: `head` is the one `submit` passed to `call_rcu`, of a leaked `KBox<Batch<T>>`.
    let b = unsafe { KBox::from_raw(head.cast::<Batch<T>>()) };
    let mut p = b.first;
    let mut bulk = [ptr::null_mut::<core::ffi::c_void>(); FREE_BULK];
    let mut n = 0;
    while let Some(e) = NonNull::new(p) {
        // SAFETY: Retired entries are unreachable (unlinked, unreferenced, a grace period
        // over) and freed only here; the cache outlives the callbacks (`Pool::drop`).
        unsafe {
            p = e.as_ref().retired.load(Relaxed);
            ptr::drop_in_place(e.as_ptr());
        }
        if let Some(slot) = bulk.get_mut(n) {
            *slot = e.as_ptr().cast();
            n += 1;
        }
        if n == FREE_BULK || p.is_null() {
            // SAFETY: The first `n` pointers are dropped entries of the cache (above), each
            // once; the slab allocator frees them in one go, by slab page.
            unsafe { bindings::kmem_cache_free_bulk(b.cache, n, bulk.as_mut_ptr()) };
            n = 0;
        }
    }
}

impl<T: Item> HashTable<T> {
    /// An empty table of `2^bits` buckets (at least [`LOCKS`]), each with `aux` as its
    /// auxiliary value.
    pub fn new(pool: Arc<Pool<T>>, bits: u32, aux: u32) -> Result<Self> {
        let bits = bits.max(LOCKS.trailing_zeros());
        let mut locks = KVec::with_capacity(LOCKS, GFP_KERNEL)?;
        let mut seq = KVec::with_capacity(LOCKS, GFP_KERNEL)?;
        for _ in 0..LOCKS {
            locks.push(KBox::pin_init(new_spinlock_bh!((), "rcu_hash_bucket"), GFP_KERNEL)?, GFP_KERNEL)?;
            seq.push(AtomicU32::new(0), GFP_KERNEL)?;
        }
        // INVARIANT: A fresh, owned, empty array.
        Ok(Self {
            cur: AtomicPtr::new(KBox::into_raw(Tab::new(bits, aux)?)),
            locks,
            seq,
            count: AtomicU32::new(0),
            resizing: KBox::pin_init(new_mutex!((), "rcu_hash_resize"), GFP_KERNEL)?,
            retired: AtomicPtr::new(ptr::null_mut()),
            n_retired: AtomicU32::new(0),
            pool,
        })
    }

    fn tab<'a>(&'a self, _g: &'a rcu::Guard) -> &'a Tab<T> {
        // SAFETY: `cur` is always a live array (type invariants); a replaced one is freed a
        // grace period after the replacement, after the section `_g`.
        unsafe { &*self.cur.load(Acquire) }
    }

    fn next_tab<'a>(t: &'a Tab<T>, _g: &'a rcu::Guard) -> Option<&'a Tab<T>> {
        // SAFETY: A set `next` is owned by the table until it becomes `cur`, then freed only
        // as `cur` is (above).
        unsafe { t.next.load(Acquire).as_ref() }
    }

    fn lock(&self, h: u32) -> crate::sync::lock::Guard<'_, (), crate::sync::lock::spinlock_bh::SpinLockBhBackend> {
        self.locks[h as usize % LOCKS].lock()
    }

    /// Number of entries.
    #[inline]
    pub fn count(&self) -> u32 {
        self.count.load(Relaxed)
    }

    /// Number of buckets of the current array, and its bits.
    pub fn size(&self) -> (u32, u32) {
        let g = rcu::read_lock();
        let t = self.tab(&g);
        (t.mask + 1, t.bits)
    }

    /// The entry of hash `h` for which `f` holds.
    #[inline(always)]
    pub fn lookup<'a>(&'a self, h: u32, g: &'a rcu::Guard, f: impl Fn(&T) -> bool) -> Option<&'a Entry<T>> {
        let t = self.tab(g);
        match Self::next_tab(t, g) {
            None => t.find(h, &f),
            Some(nt) => self.lookup_moving(t, nt, h, &f),
        }
    }

    /// [`Self::lookup`] while entries move from `t` to `nt` (a resize).
    #[inline(never)]
    fn lookup_moving<'a>(
        &'a self,
        t: &'a Tab<T>,
        nt: &'a Tab<T>,
        h: u32,
        f: &impl Fn(&T) -> bool,
    ) -> Option<&'a Entry<T>> {
        // Entries are moving from `t` to `nt`: a walk of `t` that a move overlapped may have
        // left the chain, so it is repeated; an entry moved before it is in `nt`.
        let s = &self.seq[h as usize % LOCKS];
        loop {
            let v = s.load(Acquire);
            if v & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            if let Some(e) = t.find(h, f) {
                return Some(e);
            }
            fence(Acquire);
            if s.load(Relaxed) == v {
                break;
            }
        }
        nt.find(h, f)
    }

    /// Links `value` with hash `h` unless the table holds `max` entries or more (`EBUSY`) or
    /// memory is short (`ENOMEM`). The value's reference ([`Item::take_ref`]) is released if
    /// it is not linked. Callable from any context.
    pub fn insert<'a>(&'a self, h: u32, value: T, max: u32, g: &'a rcu::Guard) -> Result<&'a Entry<T>> {
        if self.count.fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1)).is_err() {
            self.release_of(&value);
            return Err(EBUSY);
        }
        let e = Entry {
            next: AtomicPtr::new(ptr::null_mut()),
            value,
            refs: AtomicU32::new(1),
            hash: h,
            retired: AtomicPtr::new(ptr::null_mut()),
        };
        // On failure the value is dropped by `alloc`; release its reference first.
        let e = match self.pool.cache.alloc_or_return(e, GFP_ATOMIC) {
            Ok(e) => e,
            Err(e) => {
                self.count.fetch_sub(1, Relaxed);
                self.release_of(&e.value);
                return Err(ENOMEM);
            }
        };
        {
            let _l = self.lock(h);
            let t = self.tab(g);
            // Under the lock: a resize announced before the lock was taken moves this bucket
            // only after this section, and a new array announced after waits for `g` to end.
            let t = Self::next_tab(t, g).unwrap_or(t);
            let head = t.head(h);
            // SAFETY: `e` is a fresh, exclusively owned entry.
            unsafe { e.as_ref() }.next.store(head.load(Relaxed), Relaxed);
            head.store(e.as_ptr(), Release);
        }
        // SAFETY: Linked above; it stays allocated for the read-side critical section `g`.
        Ok(unsafe { &*e.as_ptr() })
    }

    fn release_of(&self, value: &T) {
        if let Some(r) = value.take_ref() {
            self.release(r);
        }
    }

    /// Unlinks `e`; false if it was no longer linked.
    pub fn unlink(&self, e: &Entry<T>) -> bool {
        self.unlink_with(e, |_| ())
    }

    /// Unlinks `e`, calling `f` on it under its lock once it is out of its chain; false (and
    /// no call) if it was no longer linked.
    pub fn unlink_with(&self, e: &Entry<T>, f: impl FnOnce(&T)) -> bool {
        let done = {
            let _l = self.lock(e.hash);
            let g = rcu::read_lock();
            let t = self.tab(&g);
            let done = t.unlink_locked(e) || Self::next_tab(t, &g).is_some_and(|nt| nt.unlink_locked(e));
            if done {
                f(&e.value);
            }
            done
        };
        if done {
            self.unlinked(e);
        }
        done
    }

    /// Calls `f` on `e` under its lock if it is linked (no removal runs meanwhile); false
    /// (and no call) if it is not.
    pub fn with_linked(&self, e: &Entry<T>, f: impl FnOnce(&T)) -> bool {
        let _l = self.lock(e.hash);
        let g = rcu::read_lock();
        let t = self.tab(&g);
        let linked = t.contains(e) || Self::next_tab(t, &g).is_some_and(|nt| nt.contains(e));
        if linked {
            f(&e.value);
        }
        linked
    }

    /// Book-keeping of an entry just unlinked: the count, its reference to another entry and
    /// the table's own.
    fn unlinked(&self, e: &Entry<T>) {
        self.count.fetch_sub(1, Relaxed);
        self.release_of(&e.value);
        self.put(e, 1);
    }

    fn put(&self, e: &Entry<T>, n: u32) {
        if e.refs.fetch_sub(n, AcqRel) == n {
            self.retire(e);
        }
    }

    /// A counted reference to `e`, unless it already left the table.
    pub fn get_ref(&self, e: &Entry<T>) -> Option<EntryRef<T>> {
        e.refs.fetch_update(AcqRel, Relaxed, |r| (r & 1 != 0).then(|| r.checked_add(2)).flatten()).ok()?;
        Some(EntryRef { ptr: NonNull::from(e) })
    }

    /// Gives a reference back; the entry goes once unlinked and unreferenced.
    pub fn release(&self, r: EntryRef<T>) {
        // SAFETY: The reference keeps the entry allocated until `put` below.
        self.put(unsafe { r.ptr.as_ref() }, 2);
    }

    /// Queues an unlinked, unreferenced entry to be freed after a grace period.
    fn retire(&self, e: &Entry<T>) {
        let p = ptr::from_ref(e).cast_mut();
        let mut head = self.retired.load(Relaxed);
        loop {
            e.retired.store(head, Relaxed);
            match self.retired.compare_exchange_weak(head, p, Release, Relaxed) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        if self.n_retired.fetch_add(1, Relaxed) + 1 >= BATCH {
            self.submit();
        }
    }

    /// Hands the retired entries to an RCU callback that frees them (if memory for it is
    /// short, they wait for the next call). Any context; called when a batch fills, and
    /// should be called now and then (a timer) for the entries of a batch that does not.
    pub fn submit(&self) {
        if self.retired.load(Relaxed).is_null() {
            return;
        }
        let Some(b) = self.new_batch(GFP_ATOMIC) else {
            return;
        };
        self.n_retired.store(0, Relaxed);
        // SAFETY: `b` is a fresh, exclusively owned batch; the swap hands it the whole list,
        // whose entries are all retired (unlinked, unreferenced).
        unsafe { Self::queue(b, self.retired.swap(ptr::null_mut(), Acquire)) };
    }

    fn new_batch(&self, flags: crate::alloc::Flags) -> Option<*mut Batch<T>> {
        let b = KBox::new(
            Batch::<T> {
                // SAFETY: All-zeroes is a valid unused `callback_head`.
                head: unsafe { core::mem::zeroed() },
                first: ptr::null_mut(),
                cache: self.pool.cache.as_raw(),
            },
            flags,
        )
        .ok()?;
        Some(KBox::into_raw(b))
    }

    /// Queues the list `first` (linked through `retired`) to be freed by batch `b`.
    ///
    /// # Safety
    ///
    /// `b` comes from [`Self::new_batch`] and is not queued yet; the list's entries are
    /// retired (unlinked, unreferenced), each in no other list.
    unsafe fn queue(b: *mut Batch<T>, first: *mut Entry<T>) {
        // SAFETY: Exclusively owned (the caller's contract); `call_rcu` takes it over.
        unsafe {
            (*b).first = first;
            bindings::call_rcu(ptr::addr_of_mut!((*b).head), Some(free_batch::<T>));
        }
    }

    /// Frees the list `first` (linked through `retired`) after a grace period: in a batch
    /// of its own, or, if memory for one is short, after waiting for the grace period here.
    /// Process context.
    fn retire_list(&self, first: *mut Entry<T>) {
        if first.is_null() {
            return;
        }
        if let Some(b) = self.new_batch(GFP_KERNEL) {
            // SAFETY: A fresh batch; the caller's list is retired entries, in no other list.
            unsafe { Self::queue(b, first) };
            return;
        }
        rcu::synchronize_rcu();
        let mut p = first;
        while let Some(e) = NonNull::new(p) {
            // SAFETY: Retired entries are unreachable and a grace period is over.
            unsafe {
                p = e.as_ref().retired.load(Relaxed);
                self.pool.cache.free(e);
            }
        }
    }

    /// Unlinks the entries of bucket `b` of the current array for which `gone` holds, under
    /// the bucket's lock, and returns how many are left.
    pub fn retain_bucket(&self, b: u32, mut gone: impl FnMut(&Entry<T>) -> bool) -> u32 {
        let mut left = 0;
        let _l = self.lock(b);
        let g = rcu::read_lock();
        let t = self.tab(&g);
        let Some(mut link) = t.heads.get(b as usize) else {
            return 0;
        };
        loop {
            let p = link.load(Relaxed);
            // SAFETY: Linked entries are live while their lock is held.
            let Some(e) = (unsafe { p.as_ref() }) else {
                break;
            };
            if gone(e) {
                link.store(e.next.load(Relaxed), Release);
                self.unlinked(e);
            } else {
                left += 1;
                link = &e.next;
            }
        }
        left
    }

    /// Calls `f` on each entry of bucket `b` of the current array, until it returns false.
    pub fn for_each_in_bucket<'a>(&'a self, b: u32, g: &'a rcu::Guard, mut f: impl FnMut(&'a Entry<T>) -> bool) {
        let t = self.tab(g);
        let Some(head) = t.heads.get(b as usize) else {
            return;
        };
        let mut p = head.load(Acquire);
        // SAFETY: As in `Tab::find`, for the section `g`.
        while let Some(e) = unsafe { p.as_ref() } {
            if !f(e) {
                return;
            }
            p = e.next.load(Acquire);
        }
    }

    /// The auxiliary value of the current array's bucket for hash `h` (or index `h`).
    pub fn aux<'a>(&'a self, h: u32, g: &'a rcu::Guard) -> &'a AtomicU32 {
        let t = self.tab(g);
        &t.aux[(h & t.mask) as usize]
    }

    /// Entry `index` of bucket `bucket`, counting the buckets of the current array first,
    /// then those of the array a resize is filling.
    pub fn nth<'a>(&'a self, bucket: usize, index: usize, g: &'a rcu::Guard) -> Option<&'a Entry<T>> {
        let t = self.tab(g);
        let (t, b) = match bucket.checked_sub(t.heads.len()) {
            None => (t, bucket),
            Some(b) => (Self::next_tab(t, g)?, b),
        };
        let mut p = t.heads.get(b)?.load(Acquire);
        let mut i = 0;
        // SAFETY: As in `Tab::find`, for the section `g`.
        while let Some(e) = unsafe { p.as_ref() } {
            if i == index {
                return Some(e);
            }
            i += 1;
            p = e.next.load(Acquire);
        }
        None
    }

    /// Moves the cursor `(bucket, index)` to the first entry at or after it in [`Self::nth`]'s
    /// order; false past the last one. Process context: yields the CPU now and then.
    pub fn seek(&self, bucket: &mut usize, index: &mut usize) -> bool {
        let mut g = rcu::read_lock();
        let mut walked = 0;
        loop {
            let t = self.tab(&g);
            let total = t.heads.len() + Self::next_tab(t, &g).map_or(0, |n| n.heads.len());
            if *bucket >= total {
                return false;
            }
            if self.nth(*bucket, *index, &g).is_some() {
                return true;
            }
            *bucket += 1;
            *index = 0;
            walked += 1;
            if walked % RESCHED_BUCKETS == 0 {
                g.cond_resched();
            }
        }
    }

    /// Chain lengths over the current array and the one a resize fills. Process context.
    pub fn histogram(&self) -> Histogram {
        let mut h = Histogram::default();
        let mut g = rcu::read_lock();
        let mut b = 0;
        loop {
            let mut n = 0usize;
            let mut past = true;
            {
                let t = self.tab(&g);
                let len = t.heads.len() + Self::next_tab(t, &g).map_or(0, |n| n.heads.len());
                if b < len {
                    past = false;
                    let mut i = 0;
                    while i < 7 && self.nth(b, i, &g).is_some() {
                        i += 1;
                    }
                    n = i;
                }
            }
            if past {
                return h;
            }
            if let Some(c) = h.get_mut(n) {
                *c += 1;
            }
            b += 1;
            if b % RESCHED_BUCKETS == 0 {
                g.cond_resched();
            }
        }
    }

    /// Unlinks every entry, calling `f` on each under its lock. Process context: yields the
    /// CPU now and then; waits for a resize to finish first.
    pub fn flush_with(&self, mut f: impl FnMut(&T)) {
        let _r = self.resizing.lock();
        let size = {
            let g = rcu::read_lock();
            self.tab(&g).heads.len()
        };
        for b in 0..size {
            if b % RESCHED_BUCKETS == RESCHED_BUCKETS - 1 {
                crate::sched::cond_resched();
            }
            let empty = {
                let g = rcu::read_lock();
                self.tab(&g).heads.get(b).map_or(true, |h| h.load(Relaxed).is_null())
            };
            if !empty {
                self.retain_bucket(b as u32, |e| {
                    f(&e.value);
                    true
                });
            }
        }
        self.submit();
    }

    /// Unlinks every entry, calling `f` on each: the teardown of a table that nothing else
    /// reaches any more (`&mut self`), so it takes no lock and detaches the chains whole.
    /// The entries no [`EntryRef`] holds go to the RCU callbacks in batches of [`BATCH`]
    /// straight away. Process context: yields the CPU now and then.
    pub fn drain(&mut self, mut f: impl FnMut(&T)) {
        let tp = *self.cur.get_mut();
        // SAFETY: `cur` is live (type invariants); no resize runs (`&mut self`), so `next`
        // is null and `cur` stays.
        let t = unsafe { &*tp };
        let mut list: *mut Entry<T> = ptr::null_mut();
        let mut n = 0;
        for (b, head) in t.heads.iter().enumerate() {
            if b % RESCHED_BUCKETS == RESCHED_BUCKETS - 1 {
                crate::sched::cond_resched();
            }
            let mut p = head.swap(ptr::null_mut(), Relaxed);
            // SAFETY: Entries of the chain stay allocated until the table lets them go (it
            // holds bit 0 of their count until `fetch_sub` below).
            while let Some(e) = unsafe { p.as_ref() } {
                p = e.next.load(Relaxed);
                f(&e.value);
                self.release_of(&e.value);
                if e.refs.fetch_sub(1, AcqRel) == 1 {
                    e.retired.store(list, Relaxed);
                    list = ptr::from_ref(e).cast_mut();
                    n += 1;
                    if n == BATCH {
                        self.retire_list(list);
                        list = ptr::null_mut();
                        n = 0;
                    }
                }
            }
        }
        *self.count.get_mut() = 0;
        self.retire_list(list);
        self.submit();
    }

    /// Moves every entry to a new array of `2^bits` buckets (at least [`LOCKS`]), each with
    /// `aux` as its auxiliary value. Process context: sleeps (grace periods, memory, the
    /// scheduler between buckets); readers and writers go on meanwhile.
    pub fn resize(&self, bits: u32, aux: u32) -> Result {
        let bits = bits.max(LOCKS.trailing_zeros());
        let _r = self.resizing.lock();
        let tp = self.cur.load(Relaxed);
        // SAFETY: `cur` is live (type invariants) and only this function, under `resizing`,
        // replaces or frees it.
        let t = unsafe { &*tp };
        if t.bits == bits {
            return Ok(());
        }
        let ntp = KBox::into_raw(Tab::new(bits, aux)?);
        // INVARIANT: Owned by the table from here on, as `cur.next`.
        t.next.store(ntp, Release);
        // From now on every reader looks at the new array too, and every insertion goes there.
        rcu::synchronize_rcu();
        // SAFETY: Live until it is freed as `cur`, after this function.
        let nt = unsafe { &*ntp };
        for (b, head) in t.heads.iter().enumerate() {
            if b % RESCHED_BUCKETS == RESCHED_BUCKETS - 1 {
                crate::sched::cond_resched();
            }
            if head.load(Relaxed).is_null() {
                continue;
            }
            let _l = self.lock(b as u32);
            let s = &self.seq[b % LOCKS];
            s.fetch_add(1, Relaxed);
            fence(Release);
            loop {
                let p = head.load(Relaxed);
                // SAFETY: Linked entries are live while their lock is held.
                let Some(e) = (unsafe { p.as_ref() }) else {
                    break;
                };
                head.store(e.next.load(Relaxed), Relaxed);
                let nh = nt.head(e.hash);
                e.next.store(nh.load(Relaxed), Relaxed);
                nh.store(p, Release);
            }
            fence(Release);
            s.fetch_add(1, Relaxed);
        }
        // INVARIANT: The new array becomes `cur`; the old one is freed below, after every
        // reader that could still see it.
        self.cur.store(ntp, Release);
        rcu::synchronize_rcu();
        // SAFETY: Unreachable now (see above) and owned since `KBox::into_raw` in `new` or an
        // earlier resize.
        drop(unsafe { KBox::from_raw(tp) });
        Ok(())
    }
}

impl<T: Item> Drop for HashTable<T> {
    fn drop(&mut self) {
        self.drain(|_| ());
        // What `submit` could not hand over for want of memory.
        let rest = self.retired.swap(ptr::null_mut(), Relaxed);
        self.retire_list(rest);
        let t = *self.cur.get_mut();
        // SAFETY: Owned (type invariants); no resize runs (`&mut self`), so `next` is null.
        drop(unsafe { KBox::from_raw(t) });
    }
}
