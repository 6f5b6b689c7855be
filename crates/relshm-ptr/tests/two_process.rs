//! Every representation resolving in two real processes that map the same segment at
//! different addresses (Raw only at the same address, refusing otherwise).

mod common;

use common::{Node, build_list, expected_sum, shuffled_slots, walk};
use relshm_ptr::map::{Mapping, Sharing, memfd};
use relshm_ptr::{
    BaseRel, Limits, Offset, OffsetCtx, PtrError, Raw, RawCtx, Repr, SegRel, SegTable, Space,
    Swizzle, SwizzleView, translate, unswizzled, validate,
};
use relshm_testkit::{Exit, Scratch, fork_child};
use rustix::fd::AsFd;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::Duration;

const LEN: u64 = 16384;
const N: u64 = 200;
const FIRST: u64 = 64;
const WAIT: Duration = Duration::from_secs(60);

fn addr(m: &Mapping) -> u64 {
    m.as_ptr() as u64
}

#[test]
fn offset_resolves_in_a_child_at_another_address() {
    resolves_in_a_child_at_another_address::<Offset>();
}

#[test]
fn baserel_resolves_in_a_child_at_another_address() {
    resolves_in_a_child_at_another_address::<BaseRel>();
}

/// A list built by the parent, walked and relinked by a child at another address, for
/// the representations that resolve through an [`OffsetCtx`] (shared in place).
fn resolves_in_a_child_at_another_address<R: Repr<Ctx = OffsetCtx>>() {
    let fd = memfd(R::NAME, LEN).unwrap();
    let a = Mapping::new(fd.as_fd(), LEN, Sharing::Shared).unwrap();
    let slots = shuffled_slots(N, FIRST, 1);
    // SAFETY: `a` outlives the context.
    let ca = unsafe { OffsetCtx::new(a.region()) };
    // SAFETY: the slots are inside the fresh mapping, 32 bytes apart, unaliased.
    unsafe { build_list::<R>(&ca, a.as_ptr(), &slots) }.unwrap();
    let parent_base = addr(&a);
    let child = fork_child(|| {
        let b = Mapping::new(fd.as_fd(), LEN, Sharing::Shared).unwrap();
        assert_ne!(
            addr(&b),
            parent_base,
            "the child must map at another address"
        );
        // SAFETY: `b` outlives the context.
        let cb = unsafe { OffsetCtx::new(b.region()) };
        let first: &Node<R> = cb.object(slots[0]).unwrap();
        let (n, sum, offs) = walk(&cb, first, addr(&b), N as usize).unwrap();
        assert_eq!((n as u64, sum), (N, expected_sum(N)));
        assert_eq!(offs, slots);
        // Link the last node back to the first from the child: the parent sees it.
        let last: &Node<R> = cb.object(slots[N as usize - 1]).unwrap();
        last.next.set(&cb, Some(first)).unwrap();
        0
    });
    assert_eq!(child.wait_timeout(WAIT), Exit::Code(0));
    let last: &Node<R> = ca.object(slots[N as usize - 1]).unwrap();
    let back = last.next.get(&ca).unwrap().unwrap();
    assert_eq!(back as *const _ as u64 - parent_base, slots[0]);
    // Now a cycle: validate sees it when asked for an acyclic structure.
    let first: &Node<R> = ca.object(slots[0]).unwrap();
    let strict = Limits {
        acyclic: true,
        ..Limits::default()
    };
    assert!(matches!(
        validate::<_, R>(&ca, first, strict),
        Err(PtrError::Cycle { .. })
    ));
    assert_eq!(
        validate::<_, R>(&ca, first, Limits::default())
            .unwrap()
            .objects,
        N
    );
}

#[test]
fn segrel_links_cross_segments_in_a_child_at_other_addresses() {
    // Even nodes live in segment 7, odd nodes in segment 9; the list alternates.
    let fds = [memfd("seg7", LEN).unwrap(), memfd("seg9", LEN).unwrap()];
    let ids = [7u64, 9];
    let maps: Vec<Mapping> = fds
        .iter()
        .map(|fd| Mapping::new(fd.as_fd(), LEN, Sharing::Shared).unwrap())
        .collect();
    let mut table = SegTable::new();
    for (id, m) in ids.iter().zip(&maps) {
        // SAFETY: the mappings outlive the table.
        unsafe { table.add(*id, m.region()) }.unwrap();
    }
    let slots = shuffled_slots(N, FIRST, 2);
    let nodes: Vec<&Node<SegRel>> = slots
        .iter()
        .enumerate()
        // SAFETY: distinct slots inside fresh mappings.
        .map(|(i, &off)| unsafe { common::place(maps[i % 2].as_ptr(), off, i as u64 * 7 + 1) })
        .collect();
    for w in nodes.windows(2) {
        w[0].next.set(&table, Some(w[1])).unwrap();
    }
    let parent_bases: Vec<u64> = maps.iter().map(addr).collect();
    let child = fork_child(|| {
        let mine: Vec<Mapping> = fds
            .iter()
            .map(|fd| Mapping::new(fd.as_fd(), LEN, Sharing::Shared).unwrap())
            .collect();
        let mut t = SegTable::new();
        for ((id, m), parent) in ids.iter().zip(&mine).zip(&parent_bases) {
            assert_ne!(addr(m), *parent);
            // SAFETY: the mappings outlive the table.
            unsafe { t.add(*id, m.region()) }.unwrap();
        }
        let mut node: &Node<SegRel> = t.object(7, slots[0]).unwrap();
        let mut sum = node.value;
        let mut count = 1;
        while let Some(next) = node.next.get(&t).unwrap() {
            let in_seg = mine.iter().position(|m| {
                m.region()
                    .offset_of(next as *const _ as *const u8)
                    .is_some()
            });
            assert_eq!(
                in_seg,
                Some(count % 2),
                "node {count} is in the wrong segment"
            );
            node = next;
            sum += node.value;
            count += 1;
        }
        assert_eq!((count as u64, sum), (N, expected_sum(N)));
        // A table without segment 9 reports the unknown segment, naming it.
        let mut only7 = SegTable::new();
        // SAFETY: as above.
        unsafe { only7.add(7, mine[0].region()) }.unwrap();
        let first: &Node<SegRel> = only7.object(7, slots[0]).unwrap();
        assert_eq!(
            first.next.get(&only7).unwrap_err(),
            PtrError::UnknownSegment { id: 9 }
        );
        0
    });
    assert_eq!(child.wait_timeout(WAIT), Exit::Code(0));
}

/// A free address range of `len` bytes (mapped, then unmapped at once).
fn free_range(len: u64) -> u64 {
    // SAFETY: an anonymous mapping at a kernel-chosen address affects no one.
    let p = unsafe {
        rustix::mm::mmap_anonymous(
            core::ptr::null_mut(),
            len as usize,
            rustix::mm::ProtFlags::empty(),
            rustix::mm::MapFlags::PRIVATE,
        )
    }
    .unwrap();
    // SAFETY: p is the mapping made above, used by nothing.
    unsafe { rustix::mm::munmap(p, len as usize) }.unwrap();
    p as u64
}

#[test]
fn raw_works_only_in_fixed_address_mode() {
    let fd = memfd("raw", LEN).unwrap();
    // Fixed-address mode: both processes map at one address with MAP_FIXED_NOREPLACE.
    let fixed = core::ptr::NonNull::new(free_range(LEN) as *mut u8).unwrap();
    let a = Mapping::at(fd.as_fd(), LEN, Sharing::Shared, fixed).unwrap();
    assert_eq!(a.as_ptr(), fixed.as_ptr());
    // Mapping over an address in use is refused, never silently replaced.
    assert!(matches!(
        Mapping::at(fd.as_fd(), LEN, Sharing::Shared, fixed),
        Err(PtrError::Os { .. })
    ));
    // SAFETY: `a` outlives the context.
    let ca = unsafe { RawCtx::local(a.region()) };
    let slots = shuffled_slots(N, FIRST, 3);
    // SAFETY: distinct slots inside the fresh mapping.
    unsafe { build_list::<Raw>(&ca, a.as_ptr(), &slots) }.unwrap();
    // The segment records the base its raw links were written for (offset 0: header).
    // SAFETY: offset 0 is 8-aligned, inside the mapping, and no one else uses it yet.
    unsafe { a.as_ptr().cast::<u64>().write(addr(&a)) };
    let child = fork_child(|| {
        // SAFETY: offset 0 holds the written base, stored before the fork.
        let written = unsafe { a.as_ptr().cast::<u64>().read() };
        // Somewhere else: a context is refused, and a context that wrongly claims the
        // links were written here reads out-of-bounds errors, never wild memory.
        let b = Mapping::new(fd.as_fd(), LEN, Sharing::Shared).unwrap();
        assert_ne!(addr(&b), written);
        // SAFETY: `b` outlives the contexts.
        let refused = unsafe { RawCtx::new(b.region(), written) }.unwrap_err();
        assert_eq!(
            refused,
            PtrError::NotFixedAddress {
                written,
                mapped: addr(&b)
            }
        );
        // SAFETY: as above.
        let wrong = unsafe { RawCtx::local(b.region()) };
        let first: &Node<Raw> = wrong.object(slots[0]).unwrap();
        assert!(matches!(
            first.next.get(&wrong),
            Err(PtrError::OutOfBounds { .. })
        ));
        drop(b);
        // Drop the inherited mapping, then map at the same address as the parent did.
        // SAFETY: the child's copy of the parent's mapping is not used after this.
        unsafe { rustix::mm::munmap(fixed.as_ptr().cast(), LEN as usize) }.unwrap();
        let c = Mapping::at(fd.as_fd(), LEN, Sharing::Shared, fixed).unwrap();
        // SAFETY: `c` outlives the context.
        let cc = unsafe { RawCtx::new(c.region(), written) }.unwrap();
        let first: &Node<Raw> = cc.object(slots[0]).unwrap();
        let (n, sum, offs) = walk(&cc, first, addr(&c), N as usize).unwrap();
        assert_eq!((n as u64, sum), (N, expected_sum(N)));
        assert_eq!(offs, slots);
        0
    });
    assert_eq!(child.wait_timeout(WAIT), Exit::Code(0));
}

/// Writes a swizzle-format (shared, unswizzled) list directly into `m`.
fn write_swizzle_list(m: &Mapping, slots: &[u64]) {
    for (i, &off) in slots.iter().enumerate() {
        let next = slots.get(i + 1).copied();
        // SAFETY: the slot is inside the mapping, 8-aligned, and written by nobody else.
        unsafe {
            let p = m.as_ptr().add(off as usize).cast::<u64>();
            p.write(unswizzled(next).unwrap());
            p.add(1).write(i as u64 * 7 + 1);
        }
    }
}

#[test]
fn swizzle_in_a_child_never_changes_shared_bytes_and_reports_stale_words() {
    let fd = memfd("swizzle", LEN).unwrap();
    let shared = Mapping::new(fd.as_fd(), LEN, Sharing::Shared).unwrap();
    let slots = shuffled_slots(N, FIRST, 4);
    write_swizzle_list(&shared, &slots);
    let before = shared.bytes().to_vec();
    let parent_base = addr(&shared);
    let child = fork_child(|| {
        let mut view = SwizzleView::open(fd.as_fd(), LEN).unwrap();
        let base = view.region().base().as_ptr() as u64;
        assert_ne!(base, parent_base);
        for round in 0..2 {
            let first: &Node<Swizzle> = view.object(slots[0]).unwrap();
            let (n, sum, offs) = walk(&view, first, base, N as usize).unwrap();
            assert_eq!((n as u64, sum), (N, expected_sum(N)), "round {round}");
            assert_eq!(offs, slots);
        }
        // Every link was swizzled exactly once (the second round hit the fast path).
        assert_eq!(view.swizzled_words(), N as usize - 1);
        let first: &Node<Swizzle> = view.object(slots[0]).unwrap();
        let w = first.next.word().load(Acquire);
        assert_eq!(w, base + slots[1], "the private word holds the raw address");
        // Export gives back the original image byte for byte.
        let mut image = vec![0u8; LEN as usize];
        view.export(&mut image).unwrap();
        assert!(
            image == shared.bytes(),
            "exported image differs from the shared one"
        );
        // An ended epoch: every swizzled word is stale.
        view.invalidate();
        let first: &Node<Swizzle> = view.object(slots[0]).unwrap();
        assert_eq!(
            first.next.get(&view).unwrap_err(),
            PtrError::Stale { word: w }
        );
        // A moved view: the swizzled words point at the old place, and are stale too.
        let mut view = SwizzleView::open(fd.as_fd(), LEN).unwrap();
        let first: &Node<Swizzle> = view.object(slots[0]).unwrap();
        first.next.get(&view).unwrap().unwrap();
        view.move_elsewhere().unwrap();
        let first: &Node<Swizzle> = view.object(slots[0]).unwrap();
        assert!(matches!(first.next.get(&view), Err(PtrError::Stale { .. })));
        // ...while unswizzled words of the moved view still resolve.
        let second: &Node<Swizzle> = view.object(slots[1]).unwrap();
        assert!(second.next.get(&view).unwrap().is_some());
        0
    });
    assert_eq!(child.wait_timeout(WAIT), Exit::Code(0));
    assert!(
        shared.bytes() == before,
        "a private view changed the shared bytes"
    );
}

#[test]
fn translate_for_a_receiver_that_maps_elsewhere() {
    let scratch = Scratch::new();
    // The sender's structure: a Raw list in memory only it maps.
    let src_fd = memfd("src", LEN).unwrap();
    let src = Mapping::new(src_fd.as_fd(), LEN, Sharing::Shared).unwrap();
    // SAFETY: `src` outlives the context.
    let cs = unsafe { RawCtx::local(src.region()) };
    let slots = shuffled_slots(N, FIRST, 5);
    // SAFETY: distinct slots in the fresh mapping.
    unsafe { build_list::<Raw>(&cs, src.as_ptr(), &slots) }.unwrap();
    let dst_fd = memfd("dst", LEN).unwrap();
    let dst = Mapping::new(dst_fd.as_fd(), LEN, Sharing::Shared).unwrap();
    let child = fork_child(|| {
        let mine = Mapping::new(dst_fd.as_fd(), LEN, Sharing::Shared).unwrap();
        assert_ne!(addr(&mine), addr(&dst));
        // Tell the sender where the destination is mapped here (the attach table's job).
        scratch.slot(1).store(addr(&mine), Release);
        scratch.slot(0).store(1, Release);
        scratch.wait_for(0, 2, WAIT);
        let root = scratch.slot(2).load(Acquire);
        // SAFETY: `mine` outlives the context.
        let ctx = unsafe { RawCtx::new(mine.region(), addr(&mine)) }.unwrap();
        let first: &Node<Raw> = ctx.object(root - addr(&mine)).unwrap();
        let (n, sum, _) = walk(&ctx, first, addr(&mine), N as usize).unwrap();
        assert_eq!((n as u64, sum), (N, expected_sum(N)));
        0
    });
    scratch.wait_for(0, 1, WAIT);
    let receiver_base = scratch.slot(1).load(Acquire);
    // SAFETY: both mappings outlive the spaces; the destination is written only here.
    let (s, d) = unsafe {
        (
            Space::new(src.region(), addr(&src)),
            Space::new(dst.region(), receiver_base),
        )
    };
    let root = addr(&src) + slots[0];
    let t = translate::<Node<Raw>>(&s, root, &d, FIRST).unwrap();
    assert_eq!(t.objects, N);
    // The slots (32 bytes apart) are copied whole and keep their offsets.
    assert_eq!(t.used, FIRST + (N - 1) * 32 + 16);
    assert_eq!(t.root_offset, slots[0]);
    scratch.slot(2).store(t.root, Release);
    scratch.slot(0).store(2, Release);
    assert_eq!(child.wait_timeout(WAIT), Exit::Code(0));
    // In the sender the copy's links point into the receiver's range: refused here.
    // SAFETY: `dst` outlives the context.
    let refused = unsafe { RawCtx::new(dst.region(), receiver_base) }.unwrap_err();
    assert!(matches!(refused, PtrError::NotFixedAddress { .. }));
}
