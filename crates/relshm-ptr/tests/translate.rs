//! Copy-time translation as a relocation pass: congruent bulk copies, the compacting
//! fallback for sparse structures, slab relocation, and bad links in untrusted bytes.

mod common;

use common::{Node, build_list, expected_sum, shuffled_slots, walk};
use relshm_ptr::map::{Mapping, Sharing, memfd};
use relshm_ptr::{Layout, PtrError, Raw, RawCtx, Space, translate, translate_slab};
use rustix::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;

const LEN: u64 = 1 << 20;

fn shared(len: u64) -> (OwnedFd, Mapping) {
    let fd = memfd("translate", len).unwrap();
    let m = Mapping::new(fd.as_fd(), len, Sharing::Shared).unwrap();
    (fd, m)
}

fn addr(m: &Mapping) -> u64 {
    m.as_ptr() as u64
}

/// A source list through `slots`, a destination, and the spaces for a receiver that maps
/// the destination where this process does (so the copy can be walked here).
struct Case {
    _src: (OwnedFd, Mapping),
    dst: (OwnedFd, Mapping),
    s: Space,
    d: Space,
    root: u64,
}

fn case(slots: &[u64], dst_len: u64) -> Case {
    let src = shared(LEN);
    // SAFETY: `src` outlives the context and the slots are distinct, inside it.
    let cs = unsafe { RawCtx::local(src.1.region()) };
    // SAFETY: as above.
    unsafe { build_list::<Raw>(&cs, src.1.as_ptr(), slots) }.unwrap();
    let dst = shared(dst_len);
    // SAFETY: both mappings live in the case as long as the spaces; dst is written only by
    // the translation under test.
    let (s, d) = unsafe {
        (
            Space::new(src.1.region(), addr(&src.1)),
            Space::new(dst.1.region(), addr(&dst.1)),
        )
    };
    let root = addr(&src.1) + slots[0];
    Case {
        _src: src,
        dst,
        s,
        d,
        root,
    }
}

impl Case {
    /// Walks the copy from `root_offset`: (count, sum, offsets).
    fn read(&self, root_offset: u64) -> (usize, u64, Vec<u64>) {
        let m = &self.dst.1;
        // SAFETY: the mapping outlives the context; the links were written for its base.
        let ctx = unsafe { RawCtx::new(m.region(), addr(m)) }.unwrap();
        let first: &Node<Raw> = ctx.object(root_offset).unwrap();
        walk(&ctx, first, addr(m), 1 << 20).unwrap()
    }

    fn word(&self, off: u64) -> u64 {
        let b = &self.dst.1.bytes()[off as usize..off as usize + 8];
        u64::from_ne_bytes(b.try_into().unwrap())
    }
}

#[test]
fn a_dense_list_is_copied_whole_and_keeps_its_layout() {
    let n = 1000;
    let slots = shuffled_slots(n, 4096, 3);
    let c = case(&slots, LEN);
    let t = translate::<Node<Raw>>(&c.s, c.root, &c.d, 128).unwrap();
    assert_eq!(t.layout, Layout::Congruent);
    // The span [4096, 4096 + 32 (n - 1) + 16) lands at 128 (same offsets mod 8).
    let span = 32 * (n - 1) + 16;
    assert_eq!((t.objects, t.copied, t.used), (n, span, 128 + span));
    assert_eq!(t.root_offset, slots[0] - 4096 + 128);
    let (count, sum, offs) = c.read(t.root_offset);
    assert_eq!((count as u64, sum), (n, expected_sum(n)));
    let moved: Vec<u64> = slots.iter().map(|s| s - 4096 + 128).collect();
    assert_eq!(
        offs, moved,
        "every node keeps its place relative to the others"
    );
}

#[test]
fn a_sparse_structure_is_compacted() {
    // Two nodes 512 KiB apart: copying the span would move 32x more than the objects.
    let slots = [64, 64 + (512 << 10)];
    let c = case(&slots, 4096);
    let t = translate::<Node<Raw>>(&c.s, c.root, &c.d, 64).unwrap();
    assert_eq!(t.layout, Layout::Compact);
    assert_eq!(
        (t.objects, t.root_offset, t.used, t.copied),
        (2, 64, 96, 32)
    );
    assert_eq!(c.word(64), addr(&c.dst.1) + 80);
    let (count, sum, _) = c.read(t.root_offset);
    assert_eq!((count, sum), (2, expected_sum(2)));
}

#[test]
fn a_span_too_big_for_the_destination_is_compacted_or_refused() {
    let slots = shuffled_slots(100, 64, 9);
    // The span (about 3.2 KiB) does not fit 2 KiB, the 100 packed nodes (1.6 KiB) do.
    let c = case(&slots, 2048);
    let t = translate::<Node<Raw>>(&c.s, c.root, &c.d, 0).unwrap();
    assert_eq!((t.layout, t.used), (Layout::Compact, 1600));
    assert_eq!(c.read(t.root_offset).1, expected_sum(100));
    let c = case(&slots, 1024);
    assert!(matches!(
        translate::<Node<Raw>>(&c.s, c.root, &c.d, 0),
        Err(PtrError::DestinationFull { .. })
    ));
}

#[test]
fn bad_links_in_the_source_are_errors_in_either_layout() {
    for (bad, sparse) in [(8, false), (8, true), (LEN, false), (u64::MAX - 3, true)] {
        let slots: Vec<u64> = if sparse {
            vec![64, 64 + (512 << 10), 128]
        } else {
            shuffled_slots(50, 64, 1)
        };
        let c = case(&slots, LEN);
        // The second node's link: misaligned or out of the region.
        let node = (c.s.region().base().as_ptr() as u64 + slots[1]) as *const Node<Raw>;
        // SAFETY: the node lies in the source mapping, which the case keeps.
        let node = unsafe { &*node };
        node.next.word().store(
            c.s.written_base().wrapping_add(slots[2]).wrapping_add(bad),
            Relaxed,
        );
        let e = translate::<Node<Raw>>(&c.s, c.root, &c.d, 0).unwrap_err();
        assert!(
            matches!(
                e,
                PtrError::Misaligned { .. } | PtrError::OutOfBounds { .. }
            ),
            "{e:?}"
        );
    }
}

#[test]
fn a_slab_is_relocated_without_a_walk() {
    let n = 500;
    // Nodes 16 bytes apart from 4096: a dense array of Node<Raw>, in shuffled list order.
    let slots: Vec<u64> = {
        let mut v: Vec<u64> = (0..n).map(|i| 4096 + 16 * i).collect();
        fastrand::Rng::with_seed(7).shuffle(&mut v);
        v
    };
    let c = case(&slots, LEN);
    let first = c.s.written_base() + 4096;
    let t = translate_slab::<Node<Raw>>(&c.s, first, n, &c.d, 100).unwrap();
    // Aligned up to 104; the root is the slab's first element, not the list's.
    assert_eq!(
        (t.root_offset, t.used, t.objects, t.copied),
        (104, 104 + 16 * n, n, 16 * n)
    );
    let head = slots[0] - 4096 + 104;
    let (count, sum, _) = c.read(head);
    assert_eq!((count as u64, sum), (n, expected_sum(n)));
    // A link leaving the slab is an error.
    let c = case(&slots, LEN);
    let e = translate_slab::<Node<Raw>>(&c.s, first, n - 1, &c.d, 0).unwrap_err();
    assert!(matches!(e, PtrError::OutOfBounds { .. }), "{e:?}");
    // A slab that does not fit the source region is an error too.
    let e = translate_slab::<Node<Raw>>(&c.s, first, LEN, &c.d, 0).unwrap_err();
    assert!(matches!(e, PtrError::OutOfBounds { .. }), "{e:?}");
}

relshm_ptr::relocatable! {
    /// A 64-byte aligned object.
    #[repr(align(64))]
    struct Big<R> { next: relshm_ptr::Link<Big<R>, R>, pad: [u64; 7] }
}

relshm_ptr::relocatable! {
    /// An 8-byte aligned object leading to a [`Big`].
    struct Small<R> { big: relshm_ptr::Link<Big<R>, R> }
}

#[test]
fn targets_aligned_more_than_the_span_start_keep_their_alignment() {
    let (_fa, a) = shared(LEN);
    let (_fb, b) = shared(LEN);
    // SAFETY: a outlives the context.
    let ca = unsafe { RawCtx::local(a.region()) };
    // The span starts at 8 (a Small), its Bigs at 64 and 128: the copy must keep them
    // 64-byte aligned, and the rebase must accept them.
    let small = a.as_ptr().wrapping_add(8).cast::<Small<Raw>>();
    let bigs = [64usize, 128].map(|o| a.as_ptr().wrapping_add(o).cast::<Big<Raw>>());
    // SAFETY: distinct, aligned slots inside the fresh mapping, written once.
    let (small, bigs) = unsafe {
        small.write(Small {
            big: relshm_ptr::Link::null(),
        });
        for p in bigs {
            p.write(Big {
                next: relshm_ptr::Link::null(),
                pad: [7; 7],
            });
        }
        (&*small, bigs.map(|p| &*p))
    };
    small.big.set(&ca, Some(bigs[0])).unwrap();
    bigs[0].next.set(&ca, Some(bigs[1])).unwrap();
    // SAFETY: both mappings outlive the spaces; b is written only here.
    let (s, d) = unsafe {
        (
            Space::new(a.region(), addr(&a)),
            Space::new(b.region(), addr(&b)),
        )
    };
    let t = translate::<Small<Raw>>(&s, addr(&a) + 8, &d, 200).unwrap();
    assert_eq!(t.layout, Layout::Congruent);
    // Placed congruently modulo 64: 200 rounded up to 256, plus the span start's 8, so
    // the Small lands at 264 and the Bigs at 256 + 64 and 256 + 128.
    assert_eq!((t.root_offset, t.used, t.objects), (264, 256 + 192, 3));
    // SAFETY: b outlives the context; the links were written for its base.
    let cb = unsafe { RawCtx::new(b.region(), addr(&b)) }.unwrap();
    let root: &Small<Raw> = cb.object(t.root_offset).unwrap();
    let b1 = root.big.get(&cb).unwrap().unwrap();
    let b2 = b1.next.get(&cb).unwrap().unwrap();
    assert_eq!(b1 as *const _ as u64 - addr(&b), 256 + 64);
    assert_eq!(b2 as *const _ as u64 - addr(&b), 256 + 128);
    assert_eq!(b2.pad, [7; 7]);
}
