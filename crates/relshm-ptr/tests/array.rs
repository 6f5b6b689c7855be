//! Array links (`LinkVisitor::array`): an object holding a link to `cap` contiguous
//! elements, `len` of them live. Validate, both translate layouts and the slab pass reach
//! the links inside the elements, and untrusted lengths are errors.

use relshm_ptr::map::{Mapping, Sharing, memfd};
use relshm_ptr::{
    Layout, Limits, Link, LinkVisitor, PtrError, Raw, RawCtx, Relocate, Repr, Space, translate,
    validate,
};
use rustix::fd::{AsFd, OwnedFd};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

const LEN: u64 = 1 << 20;

relshm_ptr::relocatable! {
    /// An array element: a payload and a link back to the holder.
    struct Elem<R> { back: Link<Holder<R>, R>, v: u64 }
}

/// A vector-like holder: a link to `cap` elements, `len` live.
#[repr(C)]
struct Holder<R: Repr> {
    buf: Link<Elem<R>, R>,
    len: AtomicU64,
    cap: AtomicU64,
}

// SAFETY: #[repr(C)] of a link and atomics; the array link is its only link.
unsafe impl<R: Repr> Relocate<R> for Holder<R> {
    fn visit_links<V: LinkVisitor<R>>(&self, v: &mut V) {
        v.array(&self.buf, self.len.load(Relaxed), self.cap.load(Relaxed));
    }
}

fn shared() -> (OwnedFd, Mapping) {
    let fd = memfd("array", LEN).unwrap();
    let m = Mapping::new(fd.as_fd(), LEN, Sharing::Shared).unwrap();
    (fd, m)
}

const HOLDER: u64 = 64;
const BUF: u64 = 4096;

/// A holder at `HOLDER` whose buffer at `BUF` has `cap` elements, `len` of them live with
/// values 0.., each linking back to the holder.
fn build(m: &Mapping, ctx: &RawCtx, len: u64, cap: u64) -> &'static Holder<Raw> {
    // SAFETY: both objects lie inside the mapping, which outlives the test's uses.
    let h: &Holder<Raw> = unsafe { &*(m.as_ptr().add(HOLDER as usize) as *const Holder<Raw>) };
    h.len.store(len, Relaxed);
    h.cap.store(cap, Relaxed);
    let first = core::ptr::NonNull::new(m.as_ptr().wrapping_add(BUF as usize).cast()).unwrap();
    h.buf.set_ptr(ctx, Some(first)).unwrap();
    let elems = h.buf.get_slice(ctx, len).unwrap().unwrap();
    for (i, e) in elems.iter().enumerate() {
        // SAFETY: e lies in the mapping; nothing else reads it meanwhile.
        unsafe { (*(e as *const Elem<Raw> as *mut Elem<Raw>)).v = i as u64 };
        e.back.set(ctx, Some(h)).unwrap();
    }
    h
}

fn read_copy(m: &Mapping, root_offset: u64) -> Vec<u64> {
    // SAFETY: the mapping outlives the context; links were written for its base.
    let ctx = unsafe { RawCtx::new(m.region(), m.as_ptr() as u64) }.unwrap();
    let h: &Holder<Raw> = ctx.object(root_offset).unwrap();
    let elems = h.buf.get_slice(&ctx, h.len.load(Relaxed)).unwrap().unwrap();
    elems
        .iter()
        .map(|e| {
            let back = e.back.get(&ctx).unwrap().unwrap();
            assert!(core::ptr::eq(back, h), "a back link was not rebased");
            e.v
        })
        .collect()
}

#[test]
fn validate_and_both_translate_layouts_reach_links_inside_arrays() {
    let (_fs, src) = shared();
    // SAFETY: src outlives the context.
    let ctx = unsafe { RawCtx::local(src.region()) };
    let h = build(&src, &ctx, 5, 8);
    let r = validate::<Holder<Raw>, Raw>(&ctx, h, Limits::default()).unwrap();
    // The holder and its buffer; 1 array link + 5 back links.
    assert_eq!((r.objects, r.links), (2, 6));

    let (_fd, dst) = shared();
    // SAFETY: both mappings outlive the spaces; dst is written only by translate.
    let (s, d) = unsafe {
        (
            Space::new(src.region(), src.as_ptr() as u64),
            Space::new(dst.region(), dst.as_ptr() as u64),
        )
    };
    let root = src.as_ptr() as u64 + HOLDER;
    let t = translate::<Holder<Raw>>(&s, root, &d, 128).unwrap();
    assert_eq!((t.layout, t.objects), (Layout::Congruent, 2));
    assert_eq!(read_copy(&dst, t.root_offset), [0, 1, 2, 3, 4]);

    // A holder far from its buffer: the compacting copy, which copies the whole capacity.
    let far = build_far(&src, &ctx);
    let t = translate::<Holder<Raw>>(&s, src.as_ptr() as u64 + far, &d, 64).unwrap();
    assert_eq!(t.layout, Layout::Compact);
    assert_eq!(t.copied, 24 + 3 * 16);
    assert_eq!(read_copy(&dst, t.root_offset), [0, 1]);
}

/// A holder at the end of the region with a 3-element buffer (2 live) at `BUF`.
fn build_far(src: &Mapping, ctx: &RawCtx) -> u64 {
    let at = LEN - 64;
    // SAFETY: inside the mapping.
    let h: &Holder<Raw> = unsafe { &*(src.as_ptr().add(at as usize) as *const Holder<Raw>) };
    h.len.store(2, Relaxed);
    h.cap.store(3, Relaxed);
    let first = core::ptr::NonNull::new(src.as_ptr().wrapping_add(BUF as usize).cast()).unwrap();
    h.buf.set_ptr(ctx, Some(first)).unwrap();
    for e in h.buf.get_slice(ctx, 2).unwrap().unwrap() {
        e.back.set(ctx, Some(h)).unwrap();
    }
    at
}

#[test]
fn untrusted_lengths_are_errors() {
    let (_fs, src) = shared();
    // SAFETY: src outlives the context.
    let ctx = unsafe { RawCtx::local(src.region()) };
    let h = build(&src, &ctx, 2, 2);
    let check = |len: u64, cap: u64| {
        h.len.store(len, Relaxed);
        h.cap.store(cap, Relaxed);
        validate::<Holder<Raw>, Raw>(&ctx, h, Limits::default()).map(|_| ())
    };
    assert!(matches!(check(3, 2), Err(PtrError::BadLayout { .. })));
    assert!(matches!(
        check(1, u64::MAX / 8),
        Err(PtrError::BadLayout { .. })
    ));
    assert!(matches!(check(1, LEN), Err(PtrError::OutOfBounds { .. })));
    assert!(matches!(check(0, 0), Err(PtrError::BadLayout { .. })));
    assert!(check(2, 2).is_ok());
    // The same through translate.
    let (_fd, dst) = shared();
    // SAFETY: as in the test above.
    let (s, d) = unsafe {
        (
            Space::new(src.region(), src.as_ptr() as u64),
            Space::new(dst.region(), dst.as_ptr() as u64),
        )
    };
    h.cap.store(LEN, Relaxed);
    let root = src.as_ptr() as u64 + HOLDER;
    assert!(matches!(
        translate::<Holder<Raw>>(&s, root, &d, 0),
        Err(PtrError::OutOfBounds { .. })
    ));
    // And a slice of an untrusted length is an error, not an allocation or a wild read.
    assert!(h.buf.get_slice(&ctx, u64::MAX).is_err());
}
