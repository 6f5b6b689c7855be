//! Shared test fixtures: a list node type and builders that place nodes in a region.
#![allow(dead_code)]

use relshm_ptr::{Link, PtrError, Repr, relocatable};

relocatable! {
    /// A list node, generic over the representation.
    #[derive(Debug)]
    pub struct Node<R> {
        /// Next node.
        pub next: Link<Node<R>, R>,
        /// Payload.
        pub value: u64,
    }
}

/// Offsets of `n` 16-byte node slots starting at `first`, in a shuffled order.
pub fn shuffled_slots(n: u64, first: u64, seed: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).map(|i| first + i * 32).collect();
    fastrand::Rng::with_seed(seed).shuffle(&mut v);
    v
}

/// Writes a fresh node (null link, `value`) at `base + off`.
///
/// # Safety
/// `base + off` must be mapped, writable, 8-aligned, and not referenced elsewhere.
pub unsafe fn place<R: Repr>(base: *mut u8, off: u64, value: u64) -> &'static Node<R> {
    let p = base.wrapping_add(off as usize).cast::<Node<R>>();
    // SAFETY: the caller guarantees the slot is valid for writes and unaliased.
    unsafe {
        p.write(Node {
            next: Link::null(),
            value,
        });
        &*p
    }
}

/// Builds a list through `slots` (node i at slots[i], value i * 7 + 1) with `ctx`.
///
/// # Safety
/// As for [`place`], for every slot.
pub unsafe fn build_list<R: Repr>(
    ctx: &R::Ctx,
    base: *mut u8,
    slots: &[u64],
) -> Result<(), PtrError> {
    let nodes: Vec<&Node<R>> = slots
        .iter()
        .enumerate()
        // SAFETY: forwarded from the caller.
        .map(|(i, &off)| unsafe { place::<R>(base, off, i as u64 * 7 + 1) })
        .collect();
    for w in nodes.windows(2) {
        w[0].next.set(ctx, Some(w[1]))?;
    }
    Ok(())
}

/// Walks a list from `first`, returning (count, sum of values, offsets from `base`).
pub fn walk<R: Repr>(
    ctx: &R::Ctx,
    first: &Node<R>,
    base: u64,
    limit: usize,
) -> Result<(usize, u64, Vec<u64>), PtrError> {
    let mut node = first;
    let mut offs = vec![node as *const _ as u64 - base];
    let mut sum = node.value;
    while let Some(next) = node.next.get(ctx)? {
        node = next;
        offs.push(node as *const _ as u64 - base);
        sum += node.value;
        assert!(offs.len() <= limit, "list longer than {limit}");
    }
    Ok((offs.len(), sum, offs))
}

/// The sum `walk` must find for a list of `n` nodes.
pub fn expected_sum(n: u64) -> u64 {
    (0..n).map(|i| i * 7 + 1).sum()
}
