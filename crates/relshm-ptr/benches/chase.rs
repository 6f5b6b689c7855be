//! Per-hop cost of each representation: a pointer chase over N linked nodes laid out in a
//! shuffled order (so the hardware prefetcher cannot help), N from L1-resident to
//! DRAM-resident. Every variant uses the same generic `chase` with checked resolution,
//! plus `raw_unchecked` (a plain load of the next address) as the floor, `swizzle_cold`
//! (a fresh private view: first touch swizzles and faults in copy-on-write pages),
//! `translate` (the one-off copy-and-rewrite per node for a receiver: a scan from the head,
//! one `memcpy` of the span, a rebase pass), `translate_slab` (the same nodes relocated as
//! the array they are allocated in: `memcpy` and a linear pass, no walk) and `memcpy` (the
//! limit: a copy of the same bytes, into the same destination).
//!
//! With `CHASE_MIN=1` each size also prints the translations' ratios to `memcpy`.
//!
//! `CHASE_SIZES=1000,1000000 cargo bench -p relshm-ptr --bench chase` picks the sizes.

use core::ptr::NonNull;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group};
use relshm_ptr::map::{Mapping, Sharing, memfd};
use relshm_ptr::{
    BaseRel, Link, Offset, OffsetCtx, PtrError, Raw, RawCtx, Repr, SegRel, SegTable, Space,
    Swizzle, SwizzleView, relocatable, translate, translate_slab,
};
use rustix::fd::{AsFd, OwnedFd};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

relocatable! {
    /// A list node.
    pub struct Node<R> {
        /// Next node.
        pub next: Link<Node<R>, R>,
        /// Payload.
        pub value: u64,
    }
}

const FIRST: u64 = 4096;

/// The rejected null encoding for [`Offset`], kept here to measure it: a bias of 1
/// (`stored = target - &word + 1`, zero = null), which puts a second add on the hop.
struct BiasedOffset;

// SAFETY: Word is one AtomicU64, zero = null; load returns a pointer only after checking
// that the whole target lies in the context's region, aligned.
unsafe impl Repr for BiasedOffset {
    type Word = AtomicU64;
    type Ctx = OffsetCtx;
    const NAME: &'static str = "offset_biased";

    fn null() -> AtomicU64 {
        AtomicU64::new(0)
    }

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
        let s = word.load(Relaxed);
        if s == 0 {
            return Ok(None);
        }
        let target = (word.as_ptr() as u64).wrapping_add(s).wrapping_sub(1);
        let k = align.trailing_zeros();
        let off = target.wrapping_sub(ctx.base());
        if ctx.len() >= size && off.rotate_right(k) <= (ctx.len() - size) >> k {
            return Ok(NonNull::new(target as *mut u8));
        }
        Err(PtrError::Misaligned { target, align })
    }

    fn store(
        ctx: &OffsetCtx,
        word: &AtomicU64,
        target: Option<NonNull<u8>>,
    ) -> Result<(), PtrError> {
        let _ = ctx;
        let at = word.as_ptr() as u64;
        word.store(
            target.map_or(0, |t| (t.as_ptr() as u64).wrapping_sub(at).wrapping_add(1)),
            Relaxed,
        );
        Ok(())
    }
}

fn sizes() -> Vec<u64> {
    std::env::var("CHASE_SIZES")
        .ok()
        .map(|s| s.split(',').map(|x| x.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| vec![1_000, 30_000, 1_000_000, 4_000_000])
}

/// A segment holding `n` nodes of representation `R`, in shuffled slots.
struct Seg {
    fd: OwnedFd,
    map: Mapping,
    len: u64,
    /// Slot offsets in list order.
    order: Vec<u64>,
}

impl Seg {
    fn new<R: Repr>(n: u64) -> Self {
        let stride = size_of::<Node<R>>() as u64;
        let len = (FIRST + n * stride).next_multiple_of(4096);
        let fd = memfd("chase", len).unwrap();
        let map = Mapping::new(fd.as_fd(), len, Sharing::Shared).unwrap();
        let mut order: Vec<u64> = (0..n).map(|i| FIRST + i * stride).collect();
        fastrand::Rng::with_seed(n).shuffle(&mut order);
        Self {
            fd,
            map,
            len,
            order,
        }
    }

    /// Writes the nodes (null links) into `base`, returning references in list order.
    fn place<R: Repr>(&self, base: *mut u8) -> Vec<&'static Node<R>> {
        self.order
            .iter()
            .enumerate()
            .map(|(i, &off)| {
                let p = base.wrapping_add(off as usize).cast::<Node<R>>();
                // SAFETY: each slot lies inside the mapping (len covers all slots), is
                // aligned, and is written once; the mapping outlives the bench.
                unsafe {
                    p.write(Node {
                        next: Link::null(),
                        value: i as u64,
                    });
                    &*p
                }
            })
            .collect()
    }

    fn link<R: Repr>(&self, ctx: &R::Ctx, base: *mut u8) -> &'static Node<R> {
        let nodes = self.place::<R>(base);
        for w in nodes.windows(2) {
            w[0].next.set(ctx, Some(w[1])).unwrap();
        }
        nodes[0]
    }
}

#[inline(never)]
fn chase<R: Repr>(ctx: &R::Ctx, first: &Node<R>) -> u64 {
    let mut n = first;
    let mut sum = n.value;
    loop {
        match n.next.get(ctx) {
            Ok(Some(next)) => {
                n = next;
                sum = sum.wrapping_add(n.value);
            }
            Ok(None) => return sum,
            Err(e) => panic!("{e}"),
        }
    }
}

#[inline(never)]
fn chase_unchecked(first: &Node<Raw>) -> u64 {
    let mut p: *const Node<Raw> = first;
    let mut sum = 0u64;
    while !p.is_null() {
        // SAFETY: the bench's raw list links only nodes of the live mapping, ending in 0.
        let n = unsafe { &*p };
        sum = sum.wrapping_add(n.value);
        p = n.next.word().load(Relaxed) as *const Node<Raw>;
    }
    sum
}

/// Every structure of one size, built once and shared by both measuring modes.
struct Fixture {
    _raw: Seg,
    rctx: RawCtx,
    rfirst: *const Node<Raw>,
    _off: Seg,
    octx: OffsetCtx,
    ofirst: *const Node<Offset>,
    _biased: Seg,
    bctx: OffsetCtx,
    bfirst: *const Node<BiasedOffset>,
    _baserel: Seg,
    brctx: OffsetCtx,
    brfirst: *const Node<BaseRel>,
    _seg: Seg,
    table: SegTable,
    sfirst: *const Node<SegRel>,
    sw: Seg,
    warm: SwizzleView,
    wfirst: *const Node<Swizzle>,
    dst: (OwnedFd, Mapping),
    /// The nodes' slab: `[FIRST, FIRST + n * 16)` of the raw segment.
    n: u64,
    src_space: Space,
    dst_space: Space,
}

const VARIANTS: [&str; 12] = [
    "raw_unchecked",
    "raw",
    "offset",
    "offset_biased",
    "baserel",
    "segrel",
    "swizzle_warm",
    "swizzle_cold",
    "translate",
    "translate_slab",
    "cow_fault",
    "memcpy",
];

impl Fixture {
    fn new(n: u64) -> Self {
        let want: u64 = (0..n).sum();
        let raw = Seg::new::<Raw>(n);
        // SAFETY: every mapping lives in the fixture as long as the contexts do.
        let rctx = unsafe { RawCtx::local(raw.map.region()) };
        let rfirst = raw.link::<Raw>(&rctx, raw.map.as_ptr());
        let off = Seg::new::<Offset>(n);
        // SAFETY: as above.
        let octx = unsafe { OffsetCtx::new(off.map.region()) };
        let ofirst = off.link::<Offset>(&octx, off.map.as_ptr());
        let biased = Seg::new::<BiasedOffset>(n);
        // SAFETY: as above.
        let bctx = unsafe { OffsetCtx::new(biased.map.region()) };
        let bfirst = biased.link::<BiasedOffset>(&bctx, biased.map.as_ptr());
        let baserel = Seg::new::<BaseRel>(n);
        // SAFETY: as above.
        let brctx = unsafe { OffsetCtx::new(baserel.map.region()) };
        let brfirst = baserel.link::<BaseRel>(&brctx, baserel.map.as_ptr());
        let seg = Seg::new::<SegRel>(n);
        let mut table = SegTable::new();
        // SAFETY: as above.
        unsafe { table.add(1, seg.map.region()) }.unwrap();
        let sfirst = seg.link::<SegRel>(&table, seg.map.as_ptr());
        // Swizzle: build in a private view, export the unswizzled image to the segment.
        let mut sw = Seg::new::<Swizzle>(n);
        {
            let view = SwizzleView::open(sw.fd.as_fd(), sw.len).unwrap();
            let base = view.region().base().as_ptr();
            sw.link::<Swizzle>(&view, base);
            view.export(sw.map.bytes_mut()).unwrap();
        }
        let warm = SwizzleView::open(sw.fd.as_fd(), sw.len).unwrap();
        let wfirst: *const Node<Swizzle> = warm.object(sw.order[0]).unwrap();
        // Translate the raw list into a destination another process maps elsewhere.
        let dfd = memfd("chase-dst", raw.len).unwrap();
        let dst = Mapping::new(dfd.as_fd(), raw.len, Sharing::Shared).unwrap();
        // SAFETY: both mappings outlive the spaces; dst is written only by translate.
        let (src_space, dst_space) = unsafe {
            (
                Space::new(raw.map.region(), raw.map.as_ptr() as u64),
                Space::new(dst.region(), 0x6000_0000_0000),
            )
        };
        let f = Self {
            _raw: raw,
            rctx,
            rfirst,
            _off: off,
            octx,
            ofirst,
            _biased: biased,
            bctx,
            bfirst,
            _baserel: baserel,
            brctx,
            brfirst,
            _seg: seg,
            table,
            sfirst,
            sw,
            warm,
            wfirst,
            dst: (dfd, dst),
            n,
            src_space,
            dst_space,
        };
        for (v, name) in VARIANTS.iter().enumerate() {
            let cold = f.cold_view();
            let got = f.run(v, &cold);
            let expect = match *name {
                "memcpy" => n,
                "cow_fault" => f.sw.len.div_ceil(4096) - FIRST / 4096,
                _ if name.starts_with("translate") => n,
                _ => want,
            };
            assert_eq!(got, expect, "{name}");
        }
        f
    }

    /// A fresh private view (untouched: the first chase through it swizzles every link).
    fn cold_view(&self) -> SwizzleView {
        SwizzleView::open(self.sw.fd.as_fd(), self.sw.len).unwrap()
    }

    /// One operation of variant `v`: a full chase, or one translation of the list.
    fn run(&self, v: usize, cold: &SwizzleView) -> u64 {
        // SAFETY: the first nodes (all derefs below) live in the fixture's mappings; the
        // memcpy copies the slab, which lies in both the raw and the destination mapping
        // (each is at least FIRST + n nodes long), and the two do not overlap.
        unsafe {
            match VARIANTS[v] {
                "raw_unchecked" => chase_unchecked(black_box(&*self.rfirst)),
                "raw" => chase::<Raw>(black_box(&self.rctx), black_box(&*self.rfirst)),
                "offset" => chase::<Offset>(black_box(&self.octx), black_box(&*self.ofirst)),
                "offset_biased" => {
                    chase::<BiasedOffset>(black_box(&self.bctx), black_box(&*self.bfirst))
                }
                "baserel" => chase::<BaseRel>(black_box(&self.brctx), black_box(&*self.brfirst)),
                "segrel" => chase::<SegRel>(black_box(&self.table), black_box(&*self.sfirst)),
                "swizzle_warm" => chase::<Swizzle>(black_box(&self.warm), black_box(&*self.wfirst)),
                "swizzle_cold" => {
                    let first: &Node<Swizzle> = cold.object(self.sw.order[0]).unwrap();
                    chase::<Swizzle>(cold, first)
                }
                "translate" => {
                    let root = self.rfirst as u64;
                    translate::<Node<Raw>>(&self.src_space, black_box(root), &self.dst_space, FIRST)
                        .unwrap()
                        .objects
                }
                "cow_fault" => {
                    // The limit of a cold swizzle pass: the first write to every page the
                    // list occupies in a fresh private view, nothing else.
                    let base = cold.region().base().as_ptr();
                    let mut pages = 0;
                    for off in (FIRST..self.sw.len).step_by(4096) {
                        let w = AtomicU64::from_ptr(base.add(off as usize).cast());
                        // A store (an idempotent RMW may be compiled to a plain load).
                        w.store(black_box(w.load(Relaxed)), Relaxed);
                        pages += 1;
                    }
                    pages
                }
                "translate_slab" => {
                    let first = self.src_space.written_base() + FIRST;
                    translate_slab::<Node<Raw>>(
                        &self.src_space,
                        black_box(first),
                        self.n,
                        &self.dst_space,
                        FIRST,
                    )
                    .unwrap()
                    .objects
                }
                _ => {
                    let bytes = (self.n * size_of::<Node<Raw>>() as u64) as usize;
                    let from = self.src_space.region().base().as_ptr().add(FIRST as usize);
                    let to = self.dst.1.as_ptr().add(FIRST as usize);
                    core::ptr::copy_nonoverlapping(black_box(from), to, bytes);
                    bytes as u64 / size_of::<Node<Raw>>() as u64
                }
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("chase");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for n in sizes() {
        g.throughput(Throughput::Elements(n));
        let f = Fixture::new(n);
        let unused = f.cold_view();
        for (v, name) in VARIANTS.iter().enumerate() {
            g.bench_with_input(BenchmarkId::new(*name, n), &n, |b, _| {
                if *name == "swizzle_cold" {
                    b.iter_batched(
                        || f.cold_view(),
                        |view| (f.run(v, &view), view),
                        BatchSize::PerIteration,
                    )
                } else {
                    b.iter(|| f.run(v, &unused))
                }
            });
        }
    }
    g.finish();
}

/// `CHASE_MIN=1`: instead of criterion, interleave the variants round-robin and keep each
/// one's minimum time. Preemption and cache pollution by other processes only ever add
/// time, so the minimum is a stable estimate on a loaded machine where criterion's mean
/// is not; ratios to `raw` are printed per size.
fn min_of_n() {
    for n in sizes() {
        let f = Fixture::new(n);
        let reps = (20_000_000 / n).clamp(7, 20_000);
        let mut best = [f64::MAX; VARIANTS.len()];
        for _ in 0..reps {
            for (v, b) in best.iter_mut().enumerate() {
                // An untimed run first, so each variant starts from its own data in cache
                // rather than from whatever the previous variant left there.
                black_box(f.run(v, &f.cold_view()));
                let cold = f.cold_view();
                let t = std::time::Instant::now();
                black_box(f.run(v, &cold));
                *b = b.min(t.elapsed().as_secs_f64() * 1e9 / n as f64);
                drop(cold);
            }
        }
        let raw = best[1];
        let cells: Vec<String> = VARIANTS
            .iter()
            .zip(best)
            .map(|(name, ns)| format!("{name} {ns:.2} ns ({:.2}x)", ns / raw))
            .collect();
        println!("N={n} reps={reps}: {}", cells.join(", "));
        let at = |name: &str| best[VARIANTS.iter().position(|v| *v == name).unwrap()];
        let limit = at("memcpy");
        println!(
            "N={n}: memcpy {limit:.2} ns/node; translate {:.2}x memcpy, translate_slab {:.2}x memcpy",
            at("translate") / limit,
            at("translate_slab") / limit
        );
        // The floors of the two one-off passes: a translation must walk the list once and
        // copy it; a cold swizzle must walk it once and fault in the pages it writes.
        println!(
            "N={n}: translate {:.2}x (raw chase + memcpy); swizzle_cold {:.2}x (raw chase + cow_fault {:.2} ns/node)",
            at("translate") / (raw + limit),
            at("swizzle_cold") / (raw + at("cow_fault")),
            at("cow_fault"),
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    if std::env::var_os("CHASE_MIN").is_some() {
        min_of_n();
    } else {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
