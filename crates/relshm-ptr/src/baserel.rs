//! [`BaseRel`]: an offset from the start of the context's region (one implied segment).

use crate::repr::{fits, misfit_inline};
use crate::{OffsetCtx, PtrError, Repr};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Base-relative representation: the word holds `target - base`, the target's offset from
/// the start of the region the context covers (a segment, wherever this process mapped
/// it). It is [`SegRel`](crate::SegRel) with the segment implied instead of stored: eight
/// bytes, no table, and a link can only point into its own segment.
///
/// # Null encoding
/// Offset 0 is null, so all-zero bytes are null links. In a segment that is where the
/// header lives, never an object; [`Repr::store`] refuses a target at the region's start.
///
/// # Why it exists beside [`Offset`](crate::Offset)
/// Both are resolved at every dereference and shared in place. A self-relative word
/// needs the word's own address: the next address is `&word + stored`, one add after the
/// load on a pointer chase's critical path, and its self-links need an out-of-line case
/// that keeps the compiler from folding that add into the next load (1.2-1.3x a raw load
/// per hop when the list is cache-resident). Here the base is the same for every hop and
/// the check is on the loaded offset itself, so the compiler keeps `base + offset` in the
/// next load's addressing mode (`mov (base, off)`): a hop costs what a checked raw load
/// costs. The word's meaning does not depend on where it lies, so it may be moved freely.
#[derive(Debug, Clone, Copy)]
pub struct BaseRel;

// SAFETY: Word is one AtomicU64 (any bits valid, zero = null); load returns a pointer only
// after `fits` checked that the whole target lies in the context's region, aligned, and
// the region stays mapped while the context lives (OffsetCtx::new's contract).
unsafe impl Repr for BaseRel {
    type Word = AtomicU64;
    type Ctx = OffsetCtx;
    const NAME: &'static str = "baserel";
    const ID: u32 = 3;

    unsafe fn extend(ctx: &OffsetCtx, len: u64) -> bool {
        // SAFETY: forwarded: the caller guarantees the first `len` bytes stay mapped.
        unsafe { ctx.extend_to(len) };
        true
    }

    fn null() -> AtomicU64 {
        AtomicU64::new(0)
    }

    #[inline(always)]
    fn is_null(word: &AtomicU64) -> bool {
        word.load(Relaxed) == 0
    }

    #[inline(always)]
    fn load(
        ctx: &OffsetCtx,
        word: &AtomicU64,
        size: u64,
        align: u64,
    ) -> Result<Option<NonNull<u8>>, PtrError> {
        let off = word.load(Relaxed);
        // The test is on the offset, not on `base + off`: the sum is then first used by
        // the caller's loads, which take it as an addressing mode.
        if off != 0 && fits(off, ctx.len(), size, align) {
            // SAFETY: off <= len - size: base + off lies inside the context's live mapping
            // (one allocation, so `add` stays in bounds).
            // Pointer arithmetic from the non-null base (not integer arithmetic), so the
            // compiler knows the sum is not null either: no null test between the sum and
            // the caller's loads, which then take it as an addressing mode.
            return Ok(Some(unsafe { ctx.base_ptr().add(off as usize) }));
        }
        if off == 0 {
            return Ok(None);
        }
        // Built in place: a call here (even a cold one) made the compiler stop folding
        // `base + off` into the caller's loads (1.25x Raw per hop instead of 0.96x).
        Err(misfit_inline(
            ctx.base().wrapping_add(off),
            ctx.base(),
            ctx.len(),
            size,
            align,
        ))
    }

    fn store(
        ctx: &OffsetCtx,
        word: &AtomicU64,
        target: Option<NonNull<u8>>,
    ) -> Result<(), PtrError> {
        let Some(t) = target else {
            word.store(0, Relaxed);
            return Ok(());
        };
        let t = t.as_ptr() as u64;
        let off = t.wrapping_sub(ctx.base());
        if off >= ctx.len() {
            return Err(PtrError::NotWritable {
                addr: t,
                why: "a BaseRel link's target must lie in the context's region",
            });
        }
        if off == 0 {
            return Err(PtrError::Unrepresentable {
                target: t,
                word: word.as_ptr() as u64,
                why: "offset 0 of the region is the null encoding",
            });
        }
        word.store(off, Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::BaseRel;
    use crate::map::{Mapping, Sharing, memfd};
    use crate::{Link, OffsetCtx, PtrError, relocatable};
    use core::sync::atomic::Ordering::Relaxed;
    use rustix::fd::AsFd;

    relocatable! {
        /// A node.
        #[derive(Debug)]
        pub struct Node<R> { pub next: Link<Node<R>, R>, pub value: u64 }
    }

    const LEN: u64 = 8192;

    #[test]
    fn links_resolve_through_either_mapping_and_bad_words_are_errors() {
        let fd = memfd("baserel", LEN).unwrap();
        let a = Mapping::new(fd.as_fd(), LEN, Sharing::Shared).unwrap();
        let b = Mapping::new(fd.as_fd(), LEN, Sharing::Shared).unwrap();
        // SAFETY: both mappings outlive the contexts.
        let (ca, cb) = unsafe { (OffsetCtx::new(a.region()), OffsetCtx::new(b.region())) };
        let n: &Node<BaseRel> = ca.object(64).unwrap();
        let m: &Node<BaseRel> = ca.object(128).unwrap();
        assert!(n.next.get(&ca).unwrap().is_none());
        n.next.set(&ca, Some(m)).unwrap();
        assert_eq!(n.next.word().load(Relaxed), 128);
        let via_b: &Node<BaseRel> = cb.object(64).unwrap();
        let t = via_b.next.get(&cb).unwrap().unwrap();
        assert_eq!(t as *const _ as u64 - b.as_ptr() as u64, 128);
        // A self-link needs no special case.
        n.next.set(&ca, Some(n)).unwrap();
        assert!(core::ptr::eq(n.next.get(&ca).unwrap().unwrap(), n));
        // The word may live outside the region (its meaning does not depend on where).
        let local = Link::<Node<BaseRel>, BaseRel>::null();
        local.set(&ca, Some(m)).unwrap();
        assert!(core::ptr::eq(local.get(&ca).unwrap().unwrap(), m));
        // Refused targets: the region's first byte (null), memory outside it.
        let header: &Node<BaseRel> = ca.object(0).unwrap();
        assert!(matches!(
            n.next.set(&ca, Some(header)),
            Err(PtrError::Unrepresentable { .. })
        ));
        let outside = Node::<BaseRel> {
            next: Link::null(),
            value: 0,
        };
        assert!(matches!(
            n.next.set(&ca, Some(&outside)),
            Err(PtrError::NotWritable { .. })
        ));
        // Corrupted words: past the end, a node that does not fit, misaligned.
        for (bad, out_of_bounds) in [(LEN, true), (LEN - 8, true), (u64::MAX, true), (68, false)] {
            n.next.word().store(bad, Relaxed);
            let r = n.next.get(&ca);
            if out_of_bounds {
                assert!(
                    matches!(r, Err(PtrError::OutOfBounds { .. })),
                    "{bad}: {r:?}"
                );
            } else {
                assert!(
                    matches!(r, Err(PtrError::Misaligned { .. })),
                    "{bad}: {r:?}"
                );
            }
        }
    }
}
