//! [`List`]: a doubly linked list in a segment, generic over the pointer strategy `R`.
//!
//! Nodes come from the segment's heap; one robust in-segment mutex guards the list. Every
//! structural change records its intent (operation and node) in the header before the
//! first link store, and publishes in the forward direction first, so a writer killed at
//! any point leaves a forward chain that is either the old or the new list; the next
//! locker learns of the death from the lock and [repairs](ListGuard) by rebuilding the
//! backward links, tail and length from the forward chain and freeing the node of an
//! unfinished operation.
//!
//! ```
//! use relshm_collections::arena::Arena;
//! use relshm_collections::list::List;
//! use relshm_ptr::Offset;
//! use relshm_segment::{CreateOptions, Placement, Segment};
//!
//! let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
//! let arena = Arena::<Offset>::new(&seg)?;
//! let list = List::<u64, Offset>::create(&arena)?;
//! list.push_back(1)?;
//! list.push_front(0)?;
//!
//! // Another mapping of the same bytes, at another address, sees the same list.
//! let other = seg.reopen(Placement::Anywhere)?;
//! assert_ne!(other.base(), seg.base());
//! let arena2 = Arena::<Offset>::new(&other)?;
//! let list2 = List::<u64, Offset>::open(&arena2, list.offset())?;
//! assert_eq!(list2.to_vec()?, vec![0, 1]);
//! assert_eq!(list2.verify()?, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cursor;
mod guard;
mod layout;
mod repair;
mod translate;

pub use cursor::Cursor;
pub use guard::{Iter, ListGuard};
pub use layout::{LAYOUT_VERSION, LIST_MAGIC, ListHeader, ListNode};
pub(crate) use layout::{OP_NONE, fingerprint};

use crate::arena::{Arena, Result, check_header};
use crate::record::CollectionRecord;

/// What a list is called in errors.
const WHAT: &str = "relshm List";
use crate::root::Root;
use bytemuck::Pod;
use core::sync::atomic::Ordering::{Acquire, Release};
use relshm_ptr::{BaseRel, Repr};
use relshm_sync::Held;

/// A handle to a doubly linked list of `T` in a segment, resolved through an [`Arena`].
///
/// The handle owns what it needs (a clone of its arena, which keeps the segment mapped):
/// keep it in a struct, clone it, send it to another thread. Each convenience method takes
/// the list's lock for one operation; [`lock`](Self::lock) holds it across several (and
/// gives cursors and iteration).
pub struct List<T, R: Repr = BaseRel> {
    root: Root<ListHeader<T, R>, R>,
}

impl<T, R: Repr> Clone for List<T, R> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
        }
    }
}

impl<T, R: Repr> core::fmt::Debug for List<T, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("List")
            .field("offset", &self.root.offset())
            .field("strategy", &R::NAME)
            .finish()
    }
}

impl<T, R: Repr> List<T, R> {
    #[inline]
    pub(crate) fn hdr(&self) -> &ListHeader<T, R> {
        self.root.hdr()
    }

    #[inline]
    pub(crate) fn arena(&self) -> &Arena<R> {
        self.root.arena()
    }
}

impl<T: Pod, R: Repr> List<T, R> {
    /// Creates an empty list in the arena's segment.
    pub fn create(arena: &Arena<R>) -> Result<Self> {
        let p = arena.alloc::<ListHeader<T, R>>()?;
        // SAFETY: a fresh heap allocation, in bounds and aligned (checked by alloc), that no
        // one else can reach yet.
        unsafe { p.as_ptr().write(ListHeader::empty()) };
        let list = Self {
            root: Root::new(arena, p, arena.offset_of(p)),
        };
        list.hdr().magic.store(layout::LIST_MAGIC, Release);
        Ok(list)
    }

    /// Opens the list whose header is at `offset` (see [`offset`](Self::offset)), checking
    /// that it is a list of this element type and strategy.
    pub fn open(arena: &Arena<R>, offset: u64) -> Result<Self> {
        let p = arena.header_at::<ListHeader<T, R>>(offset, WHAT)?;
        // In bounds and aligned (checked by `header_at`), and every bit pattern is a valid
        // header (all atomics, links and a RawMutex).
        let list = Self {
            root: Root::new(arena, p, offset),
        };
        let hdr = list.hdr();
        check_header(
            WHAT,
            offset,
            (hdr.magic.load(Acquire), layout::LIST_MAGIC),
            (hdr.layout.load(Acquire), layout::layout::<T, R>()),
            "its element type or pointer strategy differs: open it with the types it was \
             created with",
        )?;
        Ok(list)
    }

    /// Creates an empty list and records its offset under `name` in the segment's
    /// directory, so other processes find it with [`open_named`](Self::open_named).
    pub fn create_named(arena: &Arena<R>, name: &str) -> Result<Self> {
        let list = Self::create(arena)?;
        arena.record_named(name, CollectionRecord::list::<T, R>().at(list.offset()))?;
        Ok(list)
    }

    /// Opens the list recorded under `name` by [`create_named`](Self::create_named).
    pub fn open_named(arena: &Arena<R>, name: &str) -> Result<Self> {
        Self::open(
            arena,
            arena.named_offset(name, CollectionRecord::list::<T, R>())?,
        )
    }

    /// Offset of the list's header in the segment (the same in every process).
    pub fn offset(&self) -> u64 {
        self.root.offset()
    }

    /// Takes the list's lock. If its previous holder died, repairs the list first (see the
    /// module docs); a list that cannot be repaired reports the corruption, and its lock
    /// becomes not recoverable.
    pub fn lock(&self) -> Result<ListGuard<'_, T, R>> {
        let held = Held::mutex(&self.hdr().lock, None, || self.repair())?;
        Ok(ListGuard::new(self, held))
    }

    /// How many times a holder of the list's lock died and the list was repaired.
    pub fn repairs(&self) -> u64 {
        self.hdr().repairs.load(Acquire)
    }

    /// Appends `value`.
    pub fn push_back(&self, value: T) -> Result<()> {
        self.lock()?.push_back(value)
    }

    /// Prepends `value`.
    pub fn push_front(&self, value: T) -> Result<()> {
        self.lock()?.push_front(value)
    }

    /// Removes and returns the first element.
    pub fn pop_front(&self) -> Result<Option<T>> {
        self.lock()?.pop_front()
    }

    /// Removes and returns the last element.
    pub fn pop_back(&self) -> Result<Option<T>> {
        self.lock()?.pop_back()
    }

    /// Number of elements.
    pub fn len(&self) -> Result<u64> {
        Ok(self.lock()?.len())
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.lock()?.len() == 0)
    }

    /// Removes every element.
    pub fn clear(&self) -> Result<()> {
        self.lock()?.clear()
    }

    /// The elements, front to back.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.lock()?.to_vec()
    }

    /// Walks the list and checks every link: forward and backward links agree, the tail is
    /// the last node, no cycle, the count matches `len`, no operation is half done.
    /// Returns the length.
    pub fn verify(&self) -> Result<u64> {
        self.lock()?.verify()
    }
}
