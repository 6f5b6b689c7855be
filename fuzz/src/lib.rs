//! The checks behind the fuzz targets, as plain functions of the input bytes.
//!
//! The fuzz targets call them, and `crates/relshm-ptr/tests/fuzz_regressions.rs` includes
//! this file to replay saved inputs (crashes found, and seeds) under `cargo test`. Each
//! function panics if the property it checks does not hold; library calls must return
//! `Err` on bad bytes, never crash.

mod vec_image;

use relshm_ptr::map::{Mapping, Sharing, memfd};
use relshm_ptr::{
    BaseRel, Limits, Link, LinkVisitor, Offset, OffsetCtx, Raw, RawCtx, Relocate, Repr, SegRel,
    SegTable, Space, Swizzle, SwizzleView, relocatable, translate, unswizzled, validate,
};
use rustix::fd::AsFd;
use std::collections::HashMap;

relocatable! {
    /// A graph node with two links.
    pub struct GNode<R> {
        /// First link.
        pub a: Link<GNode<R>, R>,
        /// Second link.
        pub b: Link<GNode<R>, R>,
        /// Payload.
        pub value: u64,
    }
}

/// An array holder: a link to `cap` contiguous graph nodes, the first `len` live (what a
/// vector's header is to its buffer, with elements that hold links themselves).
#[repr(C)]
pub struct ANode<R: Repr> {
    /// Live elements.
    pub len: u64,
    /// Elements the array holds.
    pub cap: u64,
    /// The array.
    pub items: Link<GNode<R>, R>,
}

// SAFETY: #[repr(C)] of plain words and a link, valid for any bits; the array link is its
// only link, reported once.
unsafe impl<R: Repr> Relocate<R> for ANode<R> {
    fn visit_links<V: LinkVisitor<R>>(&self, v: &mut V) {
        v.array(&self.items, self.len, self.cap);
    }
}

/// Reads input bytes one at a time, giving zeros past the end.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    /// Next byte (0 once exhausted).
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// Next little-endian u64 of the remaining bytes (zero-padded).
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }
}

/// A graph decoded from input: node slots (offsets) and each node's two targets.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Offset of node i in the segment.
    pub slots: Vec<u64>,
    /// Targets of node i's links a and b (node indices), `None` = null.
    pub edges: Vec<[Option<usize>; 2]>,
}

const SLOT: u64 = 32;
const FIRST: u64 = 64;
/// Segment size used by the graph targets.
pub const SEG: u64 = 8192;

impl Graph {
    /// Decodes up to 64 nodes placed in shuffled slots, with arbitrary (cyclic, shared)
    /// edges.
    pub fn decode(inp: &mut Input<'_>) -> Self {
        let n = 1 + inp.byte() as usize % 64;
        let mut slots: Vec<u64> = (0..n as u64).map(|i| FIRST + i * SLOT).collect();
        for i in (1..n).rev() {
            let j = inp.byte() as usize % (i + 1);
            slots.swap(i, j);
        }
        let pick = |b: u8| {
            let t = b as usize % (n + 1);
            (t < n).then_some(t)
        };
        let edges = (0..n)
            .map(|_| [pick(inp.byte()), pick(inp.byte())])
            .collect();
        Self { slots, edges }
    }

    /// Writes the graph into `m` in swizzle (unswizzled) format; node i's value is i + 1.
    pub fn write_swizzle(&self, m: &Mapping) {
        for (i, (&off, e)) in self.slots.iter().zip(&self.edges).enumerate() {
            let w = e.map(|t| unswizzled(t.map(|t| self.slots[t])).unwrap());
            write_words(m, off, [w[0], w[1], i as u64 + 1]);
        }
    }
}

fn write_words(m: &Mapping, off: u64, words: [u64; 3]) {
    assert!(off + 24 <= m.len());
    for (k, w) in words.into_iter().enumerate() {
        // SAFETY: off + 24 <= len (checked above), offsets are 8-aligned, and no reference
        // into the mapping is alive while the fixture writes.
        unsafe { m.as_ptr().add(off as usize + 8 * k).cast::<u64>().write(w) };
    }
}

fn node<R: Repr>(m: &Mapping, off: u64) -> &GNode<R> {
    assert!(off + 24 <= m.len() && off.is_multiple_of(8));
    // SAFETY: in bounds and aligned (checked); GNode accepts any bits.
    unsafe { &*m.as_ptr().add(off as usize).cast::<GNode<R>>() }
}

/// Build a graph in a segment, swizzle an arbitrary subset of its links (and re-point some,
/// end an epoch now and then) in a private view; the shared bytes never change and the
/// exported image equals the original with exactly the re-pointed links changed.
pub fn swizzle_roundtrip(data: &[u8]) {
    let mut inp = Input(data);
    let g = Graph::decode(&mut inp);
    let fd = memfd("fuzz-swizzle", SEG).unwrap();
    let shared = Mapping::new(fd.as_fd(), SEG, Sharing::Shared).unwrap();
    g.write_swizzle(&shared);
    let original = shared.bytes().to_vec();
    let mut expected = original.clone();
    let mut view = SwizzleView::open(fd.as_fd(), SEG).unwrap();
    let vbase = view.region().base().as_ptr() as u64;
    let mut stale_epoch = false;
    let mut swizzled = vec![[false; 2]; g.slots.len()];
    while !inp.0.is_empty() {
        let op = inp.byte();
        let i = inp.byte() as usize % g.slots.len();
        let k = (op & 1) as usize;
        let n: &GNode<Swizzle> = view.object(g.slots[i]).unwrap();
        let link = if k == 0 { &n.a } else { &n.b };
        match op >> 1 & 3 {
            // Follow the link: swizzles it; the target is the graph's.
            0 | 1 => match link.get(&view) {
                Ok(t) => {
                    let off = t.map(|t| t as *const _ as u64 - vbase);
                    let want = u64::from_ne_bytes(
                        expected[g.slots[i] as usize + 8 * k..][..8]
                            .try_into()
                            .unwrap(),
                    );
                    assert_eq!(unswizzled(off).unwrap(), want, "node {i} link {k}");
                    if off.is_some() {
                        swizzled[i][k] = true;
                    }
                }
                Err(relshm_ptr::PtrError::Stale { .. }) => {
                    assert!(stale_epoch && swizzled[i][k], "unexpected stale word");
                }
                Err(e) => panic!("node {i} link {k}: {e}"),
            },
            // Re-point the link at another node (or null) through the view.
            2 => {
                let t = inp.byte() as usize % (g.slots.len() + 1);
                let target = g
                    .slots
                    .get(t)
                    .map(|&o| view.object::<GNode<Swizzle>>(o).unwrap());
                link.set(&view, target).unwrap();
                let w = unswizzled(target.map(|_| g.slots[t])).unwrap();
                expected[g.slots[i] as usize + 8 * k..][..8].copy_from_slice(&w.to_ne_bytes());
                // A view whose epoch ended stores the shared form, which stays resolvable.
                swizzled[i][k] = target.is_some() && !stale_epoch;
            }
            // End the epoch: swizzled words become stale, the image stays exportable.
            _ => {
                view.invalidate();
                stale_epoch = true;
            }
        }
    }
    assert!(shared.bytes() == original, "the shared bytes changed");
    let mut image = vec![0u8; SEG as usize];
    view.export(&mut image).unwrap();
    assert!(
        image == expected,
        "exported image differs from the expected image"
    );
}

/// Build a Raw graph in A, translate it to B (for an arbitrary receiver base) and back to
/// C; C has A's shape: same values, same sharing, same nulls.
pub fn translate_roundtrip(data: &[u8]) {
    let mut inp = Input(data);
    let g = Graph::decode(&mut inp);
    let root = inp.byte() as usize % g.slots.len();
    // Any page-aligned receiver base below 2^47.
    let receiver = (inp.u64() % (1 << 35) + 1) << 12;
    let maps: Vec<(rustix::fd::OwnedFd, Mapping)> = (0..3)
        .map(|_| {
            let fd = memfd("fuzz-translate", SEG).unwrap();
            let m = Mapping::new(fd.as_fd(), SEG, Sharing::Shared).unwrap();
            (fd, m)
        })
        .collect();
    let (a, b, c) = (&maps[0].1, &maps[1].1, &maps[2].1);
    let abase = a.as_ptr() as u64;
    for (i, (&off, e)) in g.slots.iter().zip(&g.edges).enumerate() {
        let w = e.map(|t| t.map_or(0, |t| abase + g.slots[t]));
        write_words(a, off, [w[0], w[1], i as u64 + 1]);
    }
    // SAFETY: the mappings outlive the spaces; b and c are written only by translate.
    let (sa, sb, sb2, sc) = unsafe {
        (
            Space::new(a.region(), abase),
            Space::new(b.region(), receiver),
            Space::new(b.region(), receiver),
            Space::new(c.region(), c.as_ptr() as u64),
        )
    };
    let start = inp.byte() as u64 * 8;
    let ab = translate::<GNode<Raw>>(&sa, abase + g.slots[root], &sb, start).unwrap();
    let bc = translate::<GNode<Raw>>(&sb2, ab.root, &sc, start).unwrap();
    assert_eq!(ab.objects, bc.objects);
    assert_eq!(ab.used, bc.used, "same order, same layout");
    // Lockstep walk: A's node -> C's node must be a consistent bijection.
    // SAFETY: a and c outlive the contexts.
    let (ca, cc) = unsafe { (RawCtx::local(a.region()), RawCtx::local(c.region())) };
    let mut map: HashMap<u64, u64> = HashMap::new();
    let mut stack = vec![(
        node::<Raw>(a, g.slots[root]),
        cc.object::<GNode<Raw>>(bc.root_offset).unwrap(),
    )];
    while let Some((x, y)) = stack.pop() {
        let (xa, ya) = (x as *const _ as u64, y as *const _ as u64);
        if let Some(&seen) = map.get(&xa) {
            assert_eq!(seen, ya, "sharing differs");
            continue;
        }
        map.insert(xa, ya);
        assert_eq!(x.value, y.value);
        for (lx, ly) in [(&x.a, &y.a), (&x.b, &y.b)] {
            match (lx.get(&ca).unwrap(), ly.get(&cc).unwrap()) {
                (None, None) => {}
                (Some(tx), Some(ty)) => stack.push((tx, ty)),
                _ => panic!("null-ness differs"),
            }
        }
    }
    assert_eq!(map.len() as u64, ab.objects);
    let ys: std::collections::HashSet<u64> = map.values().copied().collect();
    assert_eq!(ys.len(), map.len(), "two nodes of A map to one node of C");
}

/// Arbitrary bytes as a segment image: opening, validating and resolving through every
/// representation returns `Ok` or `Err`, never crashes, hangs or reads out of bounds. The
/// bytes at the root are read both as a graph node and as an array holder (untrusted
/// `len` and `cap`). Then the same input corrupts a segment holding two `Vec`s (see
/// `vec_image`), whose every operation must return `Ok` or `Err` too.
pub fn untrusted_image(data: &[u8]) {
    raw_image(data);
    vec_image::corrupted_vecs(data);
}

/// The input's bytes as the image itself.
fn raw_image(data: &[u8]) {
    let mut inp = Input(data);
    let root = inp.u64() % (SEG + 64);
    let steps = 1 + inp.byte() as usize;
    let fd = memfd("fuzz-untrusted", SEG).unwrap();
    let mut shared = Mapping::new(fd.as_fd(), SEG, Sharing::Shared).unwrap();
    let n = inp.0.len().min(SEG as usize);
    shared.bytes_mut()[..n].copy_from_slice(&inp.0[..n]);
    let limits = Limits {
        max_objects: 4096,
        acyclic: root.is_multiple_of(2),
    };
    // SAFETY: the mapping outlives every context below.
    let offset = unsafe { OffsetCtx::new(shared.region()) };
    probe::<Offset>(&offset, offset.object(root).ok(), steps, limits);
    probe_array::<Offset>(&offset, offset.object(root).ok(), limits);
    probe::<BaseRel>(&offset, offset.object(root).ok(), steps, limits);
    probe_array::<BaseRel>(&offset, offset.object(root).ok(), limits);
    // SAFETY: as above.
    let raw = unsafe { RawCtx::local(shared.region()) };
    probe::<Raw>(&raw, raw.object(root).ok(), steps, limits);
    probe_array::<Raw>(&raw, raw.object(root).ok(), limits);
    let mut table = SegTable::new();
    // SAFETY: as above (segment 1 and 2 are the same bytes).
    unsafe {
        table.add(1, shared.region()).unwrap();
        table.add(2, shared.region()).unwrap();
    }
    probe::<SegRel>(&table, table.object(1, root).ok(), steps, limits);
    probe_array::<SegRel>(&table, table.object(1, root).ok(), limits);
    let view = SwizzleView::open(fd.as_fd(), SEG).unwrap();
    probe::<Swizzle>(&view, view.object(root).ok(), steps, limits);
    probe_array::<Swizzle>(&view, view.object(root).ok(), limits);
    probe::<Swizzle>(&view, view.object(root).ok(), steps, limits);
    probe_array::<Swizzle>(&view, view.object(root).ok(), limits);
    let mut image = vec![0u8; SEG as usize];
    view.export(&mut image).unwrap();
    assert!(
        image[..] == shared.bytes()[..],
        "export of an untouched image differs"
    );
    // Translating untrusted Raw bytes is checked too.
    let dfd = memfd("fuzz-untrusted-dst", SEG).unwrap();
    let dst = Mapping::new(dfd.as_fd(), SEG, Sharing::Shared).unwrap();
    // SAFETY: the mappings outlive the spaces.
    let (s, d) = unsafe {
        (
            Space::new(shared.region(), shared.as_ptr() as u64),
            Space::new(dst.region(), 1 << 30),
        )
    };
    let _ = translate::<GNode<Raw>>(&s, shared.as_ptr() as u64 + root, &d, 0);
    let _ = translate::<ANode<Raw>>(&s, shared.as_ptr() as u64 + root, &d, 0);
}

fn probe<R: Repr>(ctx: &R::Ctx, root: Option<&GNode<R>>, steps: usize, limits: Limits) {
    let Some(root) = root else { return };
    let _ = validate::<_, R>(ctx, root, limits);
    // Follow a path chosen by the values, at most `steps` hops.
    let mut n = root;
    for _ in 0..steps {
        let link = if n.value & 1 == 0 { &n.a } else { &n.b };
        match link.get(ctx) {
            Ok(Some(next)) => {
                // Touch the target: it must be readable memory.
                std::hint::black_box((next.value, next.a.is_null(), next.b.is_null()));
                n = next;
            }
            _ => break,
        }
    }
}

/// The bytes at the root as an array holder: validate, and resolving the array for its
/// length and its capacity, return `Ok` or `Err`; what validate accepts resolves.
fn probe_array<R: Repr>(ctx: &R::Ctx, root: Option<&ANode<R>>, limits: Limits) {
    let Some(root) = root else { return };
    let valid = validate::<_, R>(ctx, root, limits).is_ok();
    let _ = root.items.get_array_ptr(ctx, root.cap);
    match root.items.get_slice(ctx, root.len) {
        Ok(Some(items)) => {
            assert_eq!(items.len() as u64, root.len);
            for n in items {
                // Validate walked each live element's links: they resolve.
                let (a, b) = (n.a.get(ctx), n.b.get(ctx));
                assert!(
                    !valid || (a.is_ok() && b.is_ok()),
                    "a validated element's link fails"
                );
                std::hint::black_box(n.value);
            }
        }
        r => assert!(
            !valid,
            "a validated array does not resolve for its length: {:?}",
            r.map(|s| s.map(<[_]>::len))
        ),
    }
}
