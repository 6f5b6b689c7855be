//! Checked resolution and walks on corrupted words, in one process (two mappings).

mod common;

use common::{Node, build_list, place, shuffled_slots};
use relshm_ptr::map::{Mapping, Sharing, memfd};
use relshm_ptr::{
    Layout, Limits, Link, Offset, OffsetCtx, PtrError, Raw, RawCtx, Relocate, SegRel, SegTable,
    Space, Swizzle, SwizzleView, relocatable, translate, unswizzled, validate,
};
use rustix::fd::AsFd;
use std::sync::atomic::Ordering::Relaxed;

const LEN: u64 = 8192;

fn shared(len: u64) -> (rustix::fd::OwnedFd, Mapping) {
    let fd = memfd("t", len).unwrap();
    let m = Mapping::new(fd.as_fd(), len, Sharing::Shared).unwrap();
    (fd, m)
}

#[test]
fn offset_null_is_all_zero_and_self_links_work() {
    let (_fd, m) = shared(LEN);
    // SAFETY: m outlives the context.
    let ctx = unsafe { OffsetCtx::new(m.region()) };
    let n: &Node<Offset> = ctx.object(64).unwrap();
    assert!(n.next.is_null());
    assert!(n.next.get(&ctx).unwrap().is_none());
    // A one-node cycle (difference 0) is representable thanks to the bias.
    n.next.set(&ctx, Some(n)).unwrap();
    assert_eq!(n.next.word().load(Relaxed), 1);
    assert!(core::ptr::eq(n.next.get(&ctx).unwrap().unwrap(), n));
    n.next.set(&ctx, None).unwrap();
    assert_eq!(n.next.word().load(Relaxed), 0);
}

#[test]
fn offset_refuses_words_outside_the_region_and_bad_targets() {
    let (_fd, m) = shared(LEN);
    // SAFETY: m outlives the context.
    let ctx = unsafe { OffsetCtx::new(m.region()) };
    let target: &Node<Offset> = ctx.object(64).unwrap();
    // A link on the stack could be moved after being set: refused.
    let local = Link::<Node<Offset>, Offset>::null();
    assert!(matches!(
        local.set(&ctx, Some(target)),
        Err(PtrError::NotWritable { .. })
    ));
    assert!(local.is_null());
    // Corrupted words: out of bounds, misaligned.
    let n: &Node<Offset> = ctx.object(128).unwrap();
    n.next.word().store(1 + LEN, Relaxed);
    assert!(matches!(
        n.next.get(&ctx),
        Err(PtrError::OutOfBounds { .. })
    ));
    n.next.word().store(1 + 4, Relaxed);
    assert!(matches!(n.next.get(&ctx), Err(PtrError::Misaligned { .. })));
    // The last bytes of the region cannot hold a 16-byte node.
    n.next.word().store(1 + (LEN - 8 - 128), Relaxed);
    assert!(matches!(
        n.next.get(&ctx),
        Err(PtrError::OutOfBounds { .. })
    ));
    // Backwards far past the start wraps: still out of bounds.
    n.next.word().store(1u64.wrapping_sub(1 << 40), Relaxed);
    assert!(matches!(
        n.next.get(&ctx),
        Err(PtrError::OutOfBounds { .. })
    ));
}

#[test]
fn offset_only_the_links_own_second_byte_is_unrepresentable() {
    let (_fd, m) = shared(LEN);
    // SAFETY: m outlives the context.
    let ctx = unsafe { OffsetCtx::new(m.region()) };
    relocatable! {
        struct Bytes in Offset { pad: [u8; 8], link: Link<u8, Offset> }
    }
    let b: &Bytes = ctx.object(64).unwrap();
    let at = b.link.word().as_ptr().cast::<u8>();
    let second = core::ptr::NonNull::new(at.wrapping_add(1)).unwrap();
    assert!(matches!(
        b.link.set_ptr(&ctx, Some(second)),
        Err(PtrError::Unrepresentable { .. })
    ));
    // Its first byte (a self-link) and the byte just before it are fine.
    let first = core::ptr::NonNull::new(at).unwrap();
    b.link.set_ptr(&ctx, Some(first)).unwrap();
    assert_eq!(b.link.get_ptr(&ctx).unwrap(), Some(first));
    b.link.set(&ctx, Some(&b.pad[7])).unwrap();
    assert!(core::ptr::eq(b.link.get(&ctx).unwrap().unwrap(), &b.pad[7]));
}

#[test]
fn segrel_rejects_bad_ids_and_offset_zero() {
    let (_fd, m) = shared(LEN);
    let mut t = SegTable::new();
    // SAFETY: m outlives the table.
    unsafe {
        assert_eq!(t.add(0, m.region()), Err(PtrError::BadSegmentId { id: 0 }));
        t.add(3, m.region()).unwrap();
        assert_eq!(t.add(3, m.region()), Err(PtrError::BadSegmentId { id: 3 }));
    }
    let n: &Node<SegRel> = t.object(3, 64).unwrap();
    let header: &Node<SegRel> = t.object(3, 0).unwrap();
    assert!(matches!(
        n.next.set(&t, Some(header)),
        Err(PtrError::Unrepresentable { .. })
    ));
    n.next.word().segment.store(0, Relaxed);
    n.next.word().offset.store(64, Relaxed);
    assert!(n.next.get(&t).is_err());
    n.next.word().segment.store(3, Relaxed);
    assert!(core::ptr::eq(n.next.get(&t).unwrap().unwrap(), n));
    n.next.word().offset.store(LEN - 8, Relaxed);
    assert!(matches!(n.next.get(&t), Err(PtrError::OutOfBounds { .. })));
}

#[test]
fn swizzle_set_writes_only_the_private_view_and_exports() {
    let (fd, m) = shared(LEN);
    let view = SwizzleView::open(fd.as_fd(), LEN).unwrap();
    let a: &Node<Swizzle> = view.object(64).unwrap();
    let b: &Node<Swizzle> = view.object(96).unwrap();
    a.next.set(&view, Some(b)).unwrap();
    assert!(core::ptr::eq(a.next.get(&view).unwrap().unwrap(), b));
    assert!(
        m.bytes().iter().all(|&x| x == 0),
        "the shared bytes changed"
    );
    let mut image = vec![0u8; LEN as usize];
    view.export(&mut image).unwrap();
    let word = u64::from_ne_bytes(image[64..72].try_into().unwrap());
    assert_eq!(word, unswizzled(Some(96)).unwrap());
    // Words outside the view (here: in the shared mapping) are never written.
    let outside: &Node<Swizzle> = {
        // SAFETY: m outlives this test body; nodes accept any bits.
        let c = unsafe { OffsetCtx::new(m.region()) };
        let n: &Node<Offset> = c.object(64).unwrap();
        // SAFETY: Node<Offset> and Node<Swizzle> have the same layout (AtomicU64 + u64).
        unsafe { &*(n as *const Node<Offset>).cast::<Node<Swizzle>>() }
    };
    assert!(matches!(
        outside.next.set(&view, Some(b)),
        Err(PtrError::NotWritable { .. })
    ));
    // Resolving a shared unswizzled word through the view works but does not write it.
    outside
        .next
        .word()
        .store(unswizzled(Some(96)).unwrap(), Relaxed);
    assert!(core::ptr::eq(outside.next.get(&view).unwrap().unwrap(), b));
    assert_eq!(
        outside.next.word().load(Relaxed),
        unswizzled(Some(96)).unwrap()
    );
    let mut small = vec![0u8; 10];
    assert!(matches!(
        view.export(&mut small),
        Err(PtrError::DestinationFull { .. })
    ));
}

#[test]
fn swizzle_rejects_corrupted_words() {
    let (fd, m) = shared(LEN);
    for (word, ok) in [
        (unswizzled(Some(LEN)).unwrap(), false),
        (unswizzled(Some(65)).unwrap(), false),
        (64, false),                // bit 0 clear, no tag: neither form
        (0xABCD << 48 | 64, false), // not an address of this view
        (unswizzled(Some(64)).unwrap(), true),
    ] {
        // SAFETY: offset 64 is inside the mapping and 8-aligned; no reference to it exists.
        unsafe { m.as_ptr().add(64).cast::<u64>().write(word) };
        let view = SwizzleView::open(fd.as_fd(), LEN).unwrap();
        let n: &Node<Swizzle> = view.object(64).unwrap();
        assert_eq!(n.next.get(&view).is_ok(), ok, "word {word:#x}");
    }
}

#[test]
fn validate_reports_overlap_out_of_bounds_and_limits() {
    let (_fd, m) = shared(LEN);
    // SAFETY: m outlives the context.
    let ctx = unsafe { OffsetCtx::new(m.region()) };
    let slots = shuffled_slots(10, 64, 9);
    // SAFETY: distinct slots in the fresh mapping.
    unsafe { build_list::<Offset>(&ctx, m.as_ptr(), &slots) }.unwrap();
    let first: &Node<Offset> = ctx.object(slots[0]).unwrap();
    let r = validate::<_, Offset>(&ctx, first, Limits::default()).unwrap();
    assert_eq!((r.objects, r.links, r.nulls), (10, 10, 1));
    let tight = Limits {
        max_objects: 5,
        acyclic: true,
    };
    assert_eq!(
        validate::<_, Offset>(&ctx, first, tight),
        Err(PtrError::TooManyObjects { limit: 5 })
    );
    // Point the last node 8 bytes into the first: the two objects overlap.
    let last: &Node<Offset> = ctx.object(slots[9]).unwrap();
    // SAFETY: slots[0] + 8 is inside the mapping.
    let inside = unsafe { &*m.as_ptr().add(slots[0] as usize + 8).cast::<Node<Offset>>() };
    last.next.set(&ctx, Some(inside)).unwrap();
    assert!(matches!(
        validate::<_, Offset>(&ctx, first, Limits::default()),
        Err(PtrError::Overlap { .. })
    ));
    last.next.word().store(1 << 50, Relaxed);
    assert!(matches!(
        validate::<_, Offset>(&ctx, first, Limits::default()),
        Err(PtrError::OutOfBounds { .. })
    ));
}

relocatable! {
    /// A binary-tree-ish node for walks with sharing.
    struct Pair<R> { left: Link<Pair<R>, R>, right: Link<Pair<R>, R>, value: u64 }
}

#[test]
fn translate_keeps_sharing_and_cycles_and_round_trips() {
    let (_f1, a) = shared(LEN);
    let (_f2, b) = shared(LEN);
    let (_f3, c) = shared(LEN);
    // SAFETY: a outlives the context.
    let ca = unsafe { RawCtx::local(a.region()) };
    // A diamond with a back edge: 0 -> (1, 2), 1 -> (3, 0), 2 -> (3, -), 3 -> (-, -).
    let offs = [512u64, 128, 1024, 64];
    let nodes: Vec<&Pair<Raw>> = offs
        .iter()
        .enumerate()
        .map(|(i, &o)| {
            let p = a.as_ptr().wrapping_add(o as usize).cast::<Pair<Raw>>();
            // SAFETY: distinct 24-byte slots inside the mapping.
            unsafe {
                p.write(Pair {
                    left: Link::null(),
                    right: Link::null(),
                    value: 100 + i as u64,
                });
                &*p
            }
        })
        .collect();
    for (from, l, r) in [
        (0, Some(1), Some(2)),
        (1, Some(3), Some(0)),
        (2, Some(3), None),
    ] {
        nodes[from].left.set(&ca, l.map(|i| nodes[i])).unwrap();
        nodes[from].right.set(&ca, r.map(|i| nodes[i])).unwrap();
    }
    let b_receiver = 0x7000_0000_0000;
    // SAFETY: the mappings outlive the spaces; b and c are written only here.
    let (sa, sb) = unsafe {
        (
            Space::new(a.region(), a.as_ptr() as u64),
            Space::new(b.region(), b_receiver),
        )
    };
    let t = translate::<Pair<Raw>>(&sa, nodes[0] as *const _ as u64, &sb, 64).unwrap();
    // The four nodes span [64, 1048): dense enough to be copied whole, congruently (the
    // span starts at 64 and so does the copy: every node keeps its offset).
    assert_eq!(t.layout, Layout::Congruent);
    assert_eq!((t.objects, t.root_offset, t.used), (4, 512, 1024 + 24));
    assert_eq!(t.copied, 1024 + 24 - 64);
    // B's links are for the receiver's base, not for this process.
    let w = u64::from_ne_bytes(b.bytes()[512..520].try_into().unwrap());
    assert_eq!(w, b_receiver + 128);
    // Back to A's layout in C: C's copy, read locally, has A's shape and values.
    // SAFETY: as above.
    let (sb2, sc) = unsafe {
        (
            Space::new(b.region(), b_receiver),
            Space::new(c.region(), c.as_ptr() as u64),
        )
    };
    let back = translate::<Pair<Raw>>(&sb2, t.root, &sc, 64).unwrap();
    assert_eq!(back.objects, 4);
    // SAFETY: c outlives the context.
    let cc = unsafe { RawCtx::local(c.region()) };
    let root: &Pair<Raw> = cc.object(back.root_offset).unwrap();
    let l = root.left.get(&cc).unwrap().unwrap();
    let r = root.right.get(&cc).unwrap().unwrap();
    assert_eq!((root.value, l.value, r.value), (100, 101, 102));
    assert!(core::ptr::eq(l.right.get(&cc).unwrap().unwrap(), root));
    let l3 = l.left.get(&cc).unwrap().unwrap();
    assert!(core::ptr::eq(l3, r.left.get(&cc).unwrap().unwrap()));
    assert_eq!(l3.value, 103);
    let report = validate::<_, Raw>(&cc, root, Limits::default()).unwrap();
    assert_eq!((report.objects, report.links), (4, 8));
    // A destination too small is a typed error.
    let small = c.region();
    // SAFETY: c outlives the space.
    let tiny = unsafe { Space::new(relshm_segment::Region::new(small.base(), 64 + 30), 0) };
    assert!(matches!(
        translate::<Pair<Raw>>(&sa, nodes[0] as *const _ as u64, &tiny, 64),
        Err(PtrError::DestinationFull { .. })
    ));
}

#[test]
fn links_of_user_types_are_visited_in_field_order() {
    struct Count(Vec<bool>);
    impl relshm_ptr::LinkVisitor<Offset> for Count {
        fn link<T: Relocate<Offset>>(&mut self, l: &Link<T, Offset>) {
            self.0.push(l.is_null());
        }
        fn array<T: Relocate<Offset>>(&mut self, l: &Link<T, Offset>, _: u64, _: u64) {
            self.0.push(l.is_null());
        }
    }
    relocatable! {
        struct Wide<R> { a: Link<Wide<R>, R>, n: [u32; 3], arr: [Link<Wide<R>, R>; 2] }
    }
    let (_fd, m) = shared(LEN);
    // SAFETY: m outlives the context.
    let ctx = unsafe { OffsetCtx::new(m.region()) };
    let w: &Wide<Offset> = ctx.object(64).unwrap();
    w.arr[1].set(&ctx, Some(w)).unwrap();
    let mut c = Count(Vec::new());
    w.visit_links(&mut c);
    assert_eq!(c.0, [true, true, false]);
    // Place-then-link also works with set_ptr on uninitialised targets.
    // SAFETY: slot 256 is inside the mapping and unused.
    let n = unsafe { place::<Offset>(m.as_ptr(), 256, 5) };
    let p = core::ptr::NonNull::new(m.as_ptr().wrapping_add(512).cast()).unwrap();
    n.next.set_ptr(&ctx, Some(p)).unwrap();
    assert_eq!(n.next.get_ptr(&ctx).unwrap(), Some(p));
}

#[test]
fn swizzle_export_leaves_forgotten_words_as_they_are() {
    // A link set in an object that is then freed and its bytes reused for plain data (what
    // the segment heap does after a map resize frees a bucket table): once the view forgets
    // the freed range, export must keep the new data instead of the stale link encoding.
    let (fd, _m) = shared(LEN);
    let view = SwizzleView::open(fd.as_fd(), LEN).unwrap();
    let a: &Node<Swizzle> = view.object(64).unwrap();
    let b: &Node<Swizzle> = view.object(96).unwrap();
    a.next.set(&view, Some(b)).unwrap();
    assert_eq!(view.swizzled_words(), 1);

    // The object at 64 is freed; its first word now holds someone else's data.
    a.next.word().store(0xDA7A, Relaxed);
    view.forget(64, size_of::<Node<Swizzle>>() as u64);
    assert_eq!(view.swizzled_words(), 0);
    let mut image = vec![0u8; LEN as usize];
    view.export(&mut image).unwrap();
    assert_eq!(
        u64::from_ne_bytes(image[64..72].try_into().unwrap()),
        0xDA7A
    );

    // Forgetting a range leaves words outside it alone.
    b.next.set(&view, Some(b)).unwrap();
    view.forget(0, 96);
    view.forget(104, 64);
    view.export(&mut image).unwrap();
    assert_eq!(
        u64::from_ne_bytes(image[96..104].try_into().unwrap()),
        unswizzled(Some(96)).unwrap()
    );
}

#[test]
fn swizzle_view_names_the_pages_it_wrote_links_into() {
    let (fd, _m) = shared(LEN);
    let view = SwizzleView::open(fd.as_fd(), LEN).unwrap();
    assert!(
        view.written_pages(4096).is_empty(),
        "a fresh view wrote nothing"
    );
    let a: &Node<Swizzle> = view.object(64).unwrap();
    let b: &Node<Swizzle> = view.object(LEN - 64).unwrap();
    a.next.set(&view, Some(b)).unwrap();
    b.next.set(&view, Some(a)).unwrap();
    let last_page = (LEN - 64) & !4095;
    assert_eq!(view.written_pages(4096), [0, last_page]);
    // Coarser pages group the same words (both lie in the first 64 KiB); a forgotten word's
    // page is no longer written.
    assert_eq!(view.written_pages(1 << 16), [0]);
    view.forget(64, size_of::<Node<Swizzle>>() as u64);
    assert_eq!(view.written_pages(4096), [last_page]);
}
