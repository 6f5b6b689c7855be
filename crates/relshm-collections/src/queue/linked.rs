//! [`LinkedQueue`]: an unbounded FIFO of `T` whose nodes are linked with pointer
//! representation `R` (any [`relshm_ptr::Repr`]: self-relative [`Offset`](relshm_ptr::Offset),
//! segment-relative [`SegRel`](relshm_ptr::SegRel), absolute [`Raw`](relshm_ptr::Raw) in a
//! fixed-address segment), so the queue too can be compared per strategy.
//!
//! The algorithm is the two-lock queue of Michael and Scott: a dummy node at the head,
//! producers serialised by the tail lock, consumers by the head lock, so one producer and
//! one consumer never contend. Both locks are robust [`RawMutex`]es: a process killed
//! holding one is survived.
//!
//! - A node becomes visible with one store (the old tail's `next`), after its value is
//!   written; a producer killed after that store but before advancing `tail` leaves a tail
//!   that lags, and the next tail-lock holder, told that the owner died, walks it forward.
//! - A consumer moves `head` to the first node (the new dummy) with one store after copying
//!   the value out, then frees the old dummy. A consumer killed in between leaks that one
//!   node (reported by [`LinkedQueue::verify`] as unreachable heap use, not as damage).
//!
//! # Layout
//!
//! The root (one heap allocation, `#[repr(C)]`):
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `magic` | `"RSHMLNQ1"` |
//! | 8 | `value_size` | `size_of::<T>()` (checked on attach) |
//! | 16 | `len` | messages queued (a counter, not authoritative) |
//! | 24..64 | reserved | zero |
//! | 64 | `head_lock` | robust mutex (40 bytes, padded to 64) |
//! | 128 | `tail_lock` | robust mutex (40 bytes, padded to 64) |
//! | 192 | `head` | link to the dummy node |
//! | 192 + w | `tail` | link to the last node (`w` = the link word's size) |
//!
//! A node: `next` (a link), then the value.

use crate::record::CollectionRecord;
use crate::root::Root;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::*, fence};

use relshm_ptr::{BaseRel, Link, Repr};
use relshm_sync::{Held, RawMutex};

use crate::arena::{Arena, Result, check_header, corrupt};

/// What a linked queue is called in errors.
const WHAT: &str = "relshm LinkedQueue";

/// `"RSHMLNQ1"` in little-endian.
pub const LINKED_MAGIC: u64 = u64::from_le_bytes(*b"RSHMLNQ1");
/// The linked queue's layout version, recorded in its directory record.
pub const LAYOUT_VERSION: u64 = 1;

/// The queue's root object in the segment (see the module docs).
#[repr(C)]
pub struct LinkedRoot<T, R: Repr> {
    magic: AtomicU64,
    value_size: AtomicU64,
    len: AtomicU64,
    reserved: [AtomicU64; 5],
    head_lock: RawMutex,
    pad_head: [u64; 3],
    tail_lock: RawMutex,
    pad_tail: [u64; 3],
    head: Link<LinkedNode<T, R>, R>,
    tail: Link<LinkedNode<T, R>, R>,
}

/// One node: the link to the next node, then the value.
#[repr(C)]
pub struct LinkedNode<T, R: Repr> {
    next: Link<LinkedNode<T, R>, R>,
    value: T,
}

/// An unbounded queue of `T` with links of representation `R`, in a segment; see the
/// module docs.
///
/// ```
/// use relshm_collections::arena::Arena;
/// use relshm_collections::queue::linked::LinkedQueue;
/// use relshm_ptr::Offset;
/// use relshm_segment::{CreateOptions, Segment};
///
/// let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
/// let arena = Arena::<Offset>::new(&seg)?;
/// let q = LinkedQueue::<u64, Offset>::create(&arena)?;
/// q.push(&1)?;
/// q.push(&2)?;
/// assert_eq!(q.pop()?, Some(1));
/// assert_eq!(q.pop()?, Some(2));
/// assert_eq!(q.pop()?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LinkedQueue<T, R: Repr = BaseRel> {
    inner: Root<LinkedRoot<T, R>, R>,
}

impl<T, R: Repr> Clone for LinkedQueue<T, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T, R: Repr> core::fmt::Debug for LinkedQueue<T, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LinkedQueue")
            .field("repr", &R::NAME)
            .field("offset", &self.inner.offset())
            .finish()
    }
}

impl<T: bytemuck::Pod, R: Repr> LinkedQueue<T, R> {
    /// Creates an empty queue in `arena`'s segment; [`offset`](Self::offset) is how other
    /// processes [`open`](Self::open) it.
    pub fn create(arena: &Arena<R>) -> Result<Self> {
        let root = arena.alloc::<LinkedRoot<T, R>>()?;
        let dummy = arena.alloc::<LinkedNode<T, R>>()?;
        // SAFETY: fresh allocations of the right size and alignment, known to no one else;
        // all-zero bytes are null links, unlocked mutexes and a zero (Pod) value.
        unsafe {
            root.as_ptr().write_bytes(0, 1);
            dummy.as_ptr().write_bytes(0, 1);
        }
        let q = Self {
            inner: Root::new(arena, root, arena.offset_of(root)),
        };
        let r = q.root();
        r.value_size.store(size_of::<T>() as u64, Relaxed);
        r.head.set_ptr(arena.ctx(), Some(dummy))?;
        r.tail.set_ptr(arena.ctx(), Some(dummy))?;
        r.magic.store(LINKED_MAGIC, Release);
        Ok(q)
    }

    /// Opens the queue whose root is at `offset`, checking its header.
    pub fn open(arena: &Arena<R>, offset: u64) -> Result<Self> {
        let root = arena.header_at::<LinkedRoot<T, R>>(offset, WHAT)?;
        let q = Self {
            inner: Root::new(arena, root, offset),
        };
        let r = q.root();
        check_header(
            WHAT,
            offset,
            (r.magic.load(Acquire), LINKED_MAGIC),
            (r.value_size.load(Relaxed), size_of::<T>() as u64),
            "its values have another size: open it with the value type it was created with",
        )?;
        Ok(q)
    }

    /// Creates an empty queue and records it under `name` in the segment directory.
    pub fn create_named(arena: &Arena<R>, name: &str) -> Result<Self> {
        let q = Self::create(arena)?;
        arena.record_named(
            name,
            CollectionRecord::linked_queue::<T, R>().at(q.offset()),
        )?;
        Ok(q)
    }

    /// Opens the queue recorded under `name` by [`create_named`](Self::create_named).
    pub fn open_named(arena: &Arena<R>, name: &str) -> Result<Self> {
        Self::open(
            arena,
            arena.named_offset(name, CollectionRecord::linked_queue::<T, R>())?,
        )
    }

    /// The root's offset in the segment (the same in every process).
    pub fn offset(&self) -> u64 {
        self.inner.offset()
    }

    /// The queue's root (fields are atomics, robust mutexes and links: valid for any bits).
    fn root(&self) -> &LinkedRoot<T, R> {
        self.inner.hdr()
    }

    fn arena(&self) -> &Arena<R> {
        self.inner.arena()
    }

    /// Takes the producers' lock, moving `tail` to the real last node first if a producer
    /// died holding it.
    fn lock_tail(&self) -> Result<Held<'_>> {
        Held::mutex(&self.root().tail_lock, None, || self.repair_tail())
    }

    /// Takes the consumers' lock. Nothing to repair after a holder's death: `head` moves in
    /// one store; at worst one dummy leaked.
    fn lock_head(&self) -> Result<Held<'_>> {
        Held::mutex(&self.root().head_lock, None, || Ok(()))
    }

    fn node(&self, link: &Link<LinkedNode<T, R>, R>) -> Result<Option<NonNull<LinkedNode<T, R>>>> {
        Ok(link.get_ptr(self.arena().ctx())?)
    }

    /// Appends `value`. Fails only if the heap is full or the queue is corrupted.
    pub fn push(&self, value: &T) -> Result<()> {
        let node = self.arena().alloc::<LinkedNode<T, R>>()?;
        // SAFETY: a fresh allocation only this thread knows: write the value and a null
        // next link (all-zero bytes) before anyone can see the node.
        unsafe {
            node.as_ptr().write_bytes(0, 1);
            core::ptr::addr_of_mut!((*node.as_ptr()).value).write(*value);
        }
        let r = self.root();
        let ctx = self.arena().ctx();
        let _held = self.lock_tail()?;
        let last = self
            .node(&r.tail)?
            .ok_or_else(|| corrupt("linked queue tail is null"))?;
        // Publish: the value above happens-before a consumer's read of the link.
        fence(Release);
        // SAFETY: `last` resolved inside the arena; nodes are only reached through links.
        unsafe { last.as_ref() }.next.set_ptr(ctx, Some(node))?;
        r.tail.set_ptr(ctx, Some(node))?;
        r.len.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Moves `tail` to the real last node (after a producer died between publishing its
    /// node and advancing `tail`). Bounded by the arena's size, so a cycle cannot hang it.
    fn repair_tail(&self) -> Result<()> {
        let r = self.root();
        let mut last = self
            .node(&r.tail)?
            .ok_or_else(|| corrupt("linked queue tail is null"))?;
        for _ in 0..self.arena().max_objects::<LinkedNode<T, R>>() {
            // SAFETY: resolved inside the arena.
            match self.node(&unsafe { last.as_ref() }.next)? {
                None => {
                    r.tail.set_ptr(self.arena().ctx(), Some(last))?;
                    return Ok(());
                }
                Some(n) => last = n,
            }
        }
        Err(corrupt("linked queue has a cycle after its tail"))
    }

    /// Takes the oldest value, or `None` if the queue is empty.
    pub fn pop(&self) -> Result<Option<T>> {
        let r = self.root();
        let ctx = self.arena().ctx();
        let _held = self.lock_head()?;
        let dummy = self
            .node(&r.head)?
            .ok_or_else(|| corrupt("linked queue head is null"))?;
        // SAFETY: resolved inside the arena.
        let Some(first) = self.node(&unsafe { dummy.as_ref() }.next)? else {
            return Ok(None);
        };
        fence(Acquire);
        // SAFETY: `first` resolved inside the arena (aligned, in bounds); T is Pod, so any
        // bytes are a valid T; its producer finished writing before publishing it.
        let value = unsafe { core::ptr::addr_of!((*first.as_ptr()).value).read() };
        r.head.set_ptr(ctx, Some(first))?;
        r.len.fetch_sub(1, Relaxed);
        drop(_held);
        self.arena().free(dummy)?;
        Ok(Some(value))
    }

    /// Messages queued (a snapshot of a counter).
    pub fn len(&self) -> u64 {
        self.root().len.load(Relaxed)
    }

    /// Whether the counter says the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Walks the queue from head to tail under both locks and returns the number of
    /// values; errors on a cycle, a link out of the arena, or a tail not on the chain.
    pub fn verify(&self) -> Result<u64> {
        let r = self.root();
        let _h = self.lock_head()?;
        let _t = self.lock_tail()?;
        let tail = self.node(&r.tail)?;
        let mut at = self
            .node(&r.head)?
            .ok_or_else(|| corrupt("linked queue head is null"))?;
        let mut n = 0;
        for _ in 0..self.arena().max_objects::<LinkedNode<T, R>>() {
            // SAFETY: resolved inside the arena.
            match self.node(&unsafe { at.as_ref() }.next)? {
                None if Some(at) == tail => return Ok(n),
                None => return Err(corrupt("linked queue tail is not the last node")),
                Some(next) => {
                    n += 1;
                    at = next;
                }
            }
        }
        Err(corrupt("linked queue has a cycle"))
    }
}
