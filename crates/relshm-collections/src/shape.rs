//! Where the fields of the collections' generic nodes lie, computed from the sizes and
//! alignments of the element (key, value) types and of the pointer strategy's link word,
//! by the `#[repr(C)]` rules the node types are declared with. This is how a tool walks a
//! list or map of types it has never seen, from its [`CollectionRecord`](crate::record::CollectionRecord);
//! the unit tests check every computed offset against `offset_of!` of the real types.

use relshm_ptr::Repr;

/// Largest element, key or value size a record may carry (a bound on untrusted bytes).
pub const MAX_SIZE: u64 = 1 << 32;
/// Largest alignment a record may carry.
pub const MAX_ALIGN: u64 = 4096;

/// The size and alignment of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// `size_of` the type.
    pub size: u64,
    /// `align_of` the type (a power of two).
    pub align: u64,
}

impl Shape {
    /// The shape of `T`.
    pub const fn of<T>() -> Self {
        Shape {
            size: size_of::<T>() as u64,
            align: align_of::<T>() as u64,
        }
    }

    /// Whether a Rust type can have this shape (alignment a power of two up to
    /// [`MAX_ALIGN`], size a multiple of it up to [`MAX_SIZE`]): what a shape read from a
    /// segment must pass before any offset is computed from it.
    pub fn is_valid(&self) -> bool {
        self.align.is_power_of_two()
            && self.align <= MAX_ALIGN
            && self.size <= MAX_SIZE
            && self.size.is_multiple_of(self.align)
    }

    /// `n` of these in an array.
    const fn array(self, n: u64) -> Shape {
        Shape {
            size: self.size * n,
            align: self.align,
        }
    }
}

/// Lays fields out as `#[repr(C)]` does: each at the next multiple of its alignment, the
/// whole rounded up to the largest alignment (at least the `align(N)` attribute's).
struct ReprC {
    end: u64,
    align: u64,
}

impl ReprC {
    const fn new(min_align: u64) -> Self {
        ReprC {
            end: 0,
            align: min_align,
        }
    }

    /// Places a field; returns its offset.
    fn field(&mut self, s: Shape) -> u64 {
        let at = self.end.next_multiple_of(s.align);
        self.end = at + s.size;
        self.align = self.align.max(s.align);
        at
    }

    fn finish(self) -> Shape {
        Shape {
            size: self.end.next_multiple_of(self.align),
            align: self.align,
        }
    }
}

/// The shape of strategy `R`'s link word (a `Link<_, R>` is exactly its word).
pub fn link_shape<R: Repr>() -> Shape {
    Shape::of::<R::Word>()
}

/// Field offsets of a [`ListNode<T, R>`](crate::list::ListNode): `next`, `prev`, value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListNodeLayout {
    /// Offset of the `next` link.
    pub next: u64,
    /// Offset of the `prev` link.
    pub prev: u64,
    /// Offset of the value.
    pub value: u64,
    /// The whole node.
    pub node: Shape,
}

impl ListNodeLayout {
    /// The node of a list of `elem`s whose links are `link` words.
    pub fn new(link: Shape, elem: Shape) -> Self {
        let mut l = ReprC::new(1);
        let (next, prev, value) = (l.field(link), l.field(link), l.field(elem));
        ListNodeLayout {
            next,
            prev,
            value,
            node: l.finish(),
        }
    }

    /// The node of a list of `elem`s with strategy `R`.
    pub fn of<R: Repr>(elem: Shape) -> Self {
        Self::new(link_shape::<R>(), elem)
    }
}

/// Field offsets of a map's [`MapNode`](crate::map::MapNode), [`Slot`](crate::map::Slot)
/// and [`Entry`](crate::map::Entry) for given key and value shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapLayout {
    /// A chain node.
    pub node: Shape,
    /// `MapNode::next` (the chain link).
    pub node_next: u64,
    /// `MapNode::hash`.
    pub node_hash: u64,
    /// `MapNode::key`.
    pub node_key: u64,
    /// `MapNode::value`.
    pub node_value: u64,
    /// An inline entry (key, value; 8-aligned).
    pub entry: Shape,
    /// `Entry::key`.
    pub entry_key: u64,
    /// `Entry::value`.
    pub entry_value: u64,
    /// A bucket.
    pub slot: Shape,
    /// `Slot::next` (the link to the bucket's chain).
    pub slot_next: u64,
    /// `Slot::hash` (the inline entries' hashes, one u64 each).
    pub slot_hash: u64,
    /// `Slot::entry` (the inline entries, `entry.size` apart).
    pub slot_entry: u64,
}

impl MapLayout {
    /// The layout of a map of `key` to `value` whose links are `link` words.
    pub fn new(link: Shape, key: Shape, value: Shape) -> Self {
        let mut n = ReprC::new(1);
        let node_next = n.field(link);
        let node_hash = n.field(Shape::of::<u64>());
        let (node_key, node_value) = (n.field(key), n.field(value));
        let mut e = ReprC::new(8);
        let (entry_key, entry_value) = (e.field(key), e.field(value));
        let entry = e.finish();
        let mut s = ReprC::new(64);
        let slot_next = s.field(link);
        let slot_hash = s.field(Shape::of::<u64>().array(crate::map::INLINE as u64));
        let slot_entry = s.field(entry.array(crate::map::INLINE as u64));
        MapLayout {
            node: n.finish(),
            node_next,
            node_hash,
            node_key,
            node_value,
            entry,
            entry_key,
            entry_value,
            slot: s.finish(),
            slot_next,
            slot_hash,
            slot_entry,
        }
    }

    /// The layout of a map of `key` to `value` with strategy `R`.
    pub fn of<R: Repr>(key: Shape, value: Shape) -> Self {
        Self::new(link_shape::<R>(), key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::list::ListNode;
    use crate::map::{Chunk, Entry, MapNode, Slot};
    use core::mem::offset_of;
    use relshm_ptr::{BaseRel, Offset, Raw, SegRel, Swizzle};

    /// A user's own element: 48 bytes, 8-aligned.
    #[repr(C)]
    #[derive(Clone, Copy)]
    #[allow(dead_code)]
    struct Job {
        id: u64,
        at: [u32; 6],
        tag: [u8; 16],
    }

    #[repr(C, align(32))]
    #[allow(dead_code)]
    struct Wide([u8; 96]);

    fn list<T, R: Repr>() {
        let l = ListNodeLayout::of::<R>(Shape::of::<T>());
        let want = ListNodeLayout {
            next: offset_of!(ListNode<T, R>, next) as u64,
            prev: offset_of!(ListNode<T, R>, prev) as u64,
            value: offset_of!(ListNode<T, R>, value) as u64,
            node: Shape::of::<ListNode<T, R>>(),
        };
        assert_eq!(l, want, "{} / {}", core::any::type_name::<T>(), R::NAME);
    }

    fn map<K, V, R: Repr>() {
        let m = MapLayout::of::<R>(Shape::of::<K>(), Shape::of::<V>());
        let want = MapLayout {
            node: Shape::of::<MapNode<K, V, R>>(),
            node_next: offset_of!(MapNode<K, V, R>, next) as u64,
            node_hash: offset_of!(MapNode<K, V, R>, hash) as u64,
            node_key: offset_of!(MapNode<K, V, R>, key) as u64,
            node_value: offset_of!(MapNode<K, V, R>, value) as u64,
            entry: Shape::of::<Entry<K, V>>(),
            entry_key: offset_of!(Entry<K, V>, key) as u64,
            entry_value: offset_of!(Entry<K, V>, value) as u64,
            slot: Shape::of::<Slot<K, V, R>>(),
            slot_next: offset_of!(Slot<K, V, R>, next) as u64,
            slot_hash: offset_of!(Slot<K, V, R>, hash) as u64,
            slot_entry: offset_of!(Slot<K, V, R>, entry) as u64,
        };
        assert_eq!(
            m,
            want,
            "{} -> {} / {}",
            core::any::type_name::<K>(),
            core::any::type_name::<V>(),
            R::NAME
        );
        // A chunk is its slots back to back.
        assert_eq!(
            size_of::<Chunk<K, V, R>>() as u64,
            m.slot.size * crate::map::CHUNK as u64
        );
    }

    /// A walk reads list and map headers and tables as `<u8, R>`: their layout must not
    /// depend on the element types.
    fn headers<T, R: Repr>() {
        use crate::list::ListHeader;
        use crate::map::{MapHeader, Table};
        type L<T, R> = ListHeader<T, R>;
        type M<T, R> = MapHeader<T, T, R>;
        assert_eq!(Shape::of::<L<T, R>>(), Shape::of::<L<u8, R>>());
        assert_eq!(offset_of!(L<T, R>, head), offset_of!(L<u8, R>, head));
        assert_eq!(offset_of!(L<T, R>, tail), offset_of!(L<u8, R>, tail));
        assert_eq!(Shape::of::<M<T, R>>(), Shape::of::<M<u8, R>>());
        assert_eq!(offset_of!(M<T, R>, table), offset_of!(M<u8, R>, table));
        assert_eq!(
            offset_of!(M<T, R>, new_table),
            offset_of!(M<u8, R>, new_table)
        );
        assert_eq!(
            Shape::of::<Table<T, T, R>>(),
            Shape::of::<Table<u8, u8, R>>()
        );
    }

    fn every_strategy_list<T>() {
        headers::<T, Offset>();
        headers::<T, SegRel>();
        list::<T, Offset>();
        list::<T, BaseRel>();
        list::<T, SegRel>();
        list::<T, Raw>();
        list::<T, Swizzle>();
    }

    fn every_strategy_map<K, V>() {
        map::<K, V, Offset>();
        map::<K, V, BaseRel>();
        map::<K, V, SegRel>();
        map::<K, V, Raw>();
        map::<K, V, Swizzle>();
    }

    #[test]
    fn list_node_offsets_match_the_real_types() {
        every_strategy_list::<u8>();
        every_strategy_list::<u16>();
        every_strategy_list::<u64>();
        every_strategy_list::<[u8; 3]>();
        every_strategy_list::<Job>();
        every_strategy_list::<Wide>();
        every_strategy_list::<()>();
    }

    #[test]
    fn map_offsets_match_the_real_types() {
        every_strategy_map::<u64, u64>();
        every_strategy_map::<u8, u8>();
        every_strategy_map::<u32, [u8; 5]>();
        every_strategy_map::<[u8; 24], [u8; 40]>();
        every_strategy_map::<u16, Job>();
        every_strategy_map::<Job, Wide>();
        every_strategy_map::<[u64; 2], ()>();
    }

    #[test]
    fn shapes_from_a_segment_are_checked() {
        assert!(Shape::of::<Job>().is_valid());
        assert!(Shape { size: 0, align: 1 }.is_valid());
        assert!(!Shape { size: 8, align: 3 }.is_valid());
        assert!(!Shape { size: 12, align: 8 }.is_valid());
        assert!(!Shape { size: 8, align: 0 }.is_valid());
        assert!(
            !Shape {
                size: MAX_SIZE * 2,
                align: 8
            }
            .is_valid()
        );
    }
}
