//! The data set and the timed operations every strategy runs, written once over the
//! pointer representation `R` so each strategy executes the same collection code.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use relshm::collections::list::List;
use relshm::collections::map::Map;
use relshm::collections::vec::Vec as SegVec;
use relshm::ptr::Repr;
use serde::{Deserialize, Serialize};

use super::json::Shape;

/// Which collection a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Structure {
    /// A doubly linked list of `u64`: traversal chases one link per element.
    List,
    /// A contiguous vector of `u64` (one buffer behind one link): traversal walks memory
    /// in order, as the peers' `Vec<u64>` does.
    Vec,
    /// A hash map `u64 -> u64`: the read workload looks up every key once.
    Map,
}

impl Structure {
    /// Every structure, in the order the report shows them (the vector beside the list:
    /// the same elements, linked or contiguous).
    pub const ALL: [Structure; 3] = [Self::List, Self::Vec, Self::Map];

    /// Lower-case name used in the table, the JSON and child arguments.
    pub fn name(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Vec => "vec",
            Self::Map => "map",
        }
    }

    /// How the structure lays out its elements.
    pub fn shape(self) -> Shape {
        match self {
            Self::List => Shape::Linked,
            Self::Vec => Shape::Contiguous,
            Self::Map => Shape::Hash,
        }
    }

    /// Segment bytes that hold `n` elements (and, for copy-time translation, one copy).
    pub fn segment_bytes(self, n: u64) -> u64 {
        let per = match self {
            // 24-byte node (40 for SegRel) + 16-byte block header, rounded to 16.
            Self::List => 64,
            // One buffer of exactly n elements (the build reserves it once); its block
            // header and the vector's header fit in the slack.
            Self::Vec => 8,
            // Node (48 bytes with SegRel links), its block header, and the bucket array
            // at the lowest load factor (up to 2 buckets of 16 bytes per entry), with
            // room for the table being replaced during a resize and for fragmentation.
            Self::Map => 224,
        };
        // Tight, so that whole-segment work (export, import, publish) is about the
        // structure and not about free space.
        n * per + (512 << 10)
    }

    /// Bytes to reserve for a translated copy of `n` elements. A congruent copy (see
    /// `relshm::ptr::translate::Layout`) carries the whole span the structure occupies in
    /// its source, free blocks between its objects included: for a map, the bucket
    /// tables its resizes freed (up to about 210 bytes per entry at 1e4).
    pub fn copy_bytes(self, n: u64) -> u64 {
        match self {
            Self::List => n * 48 + (64 << 10),
            Self::Vec => n * 8 + (64 << 10),
            Self::Map => n * 224 + (128 << 10),
        }
    }
}

/// The `i`-th key (maps) or value (lists) of the data set: scattered, distinct, and the
/// same in every process and every strategy.
pub fn element(i: u64) -> u64 {
    // splitmix64: a bijection, so keys never collide.
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Expected result of one read pass over `n` elements (a checksum every strategy must hit).
pub fn checksum(n: u64) -> u64 {
    (0..n).fold(0u64, |s, i| s.wrapping_add(element(i)))
}

/// Fills a list with the data set; returns the time taken.
pub fn build_list<R: Repr>(list: &List<u64, R>, n: u64) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut g = list.lock()?;
    for i in 0..n {
        g.push_back(element(i))?;
    }
    Ok(t.elapsed())
}

/// Fills a vector with the data set; returns the time taken.
pub fn build_vec<R: Repr>(v: &SegVec<u64, R>, n: u64) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut g = v.lock()?;
    // Sized once, as the peers' `collect` sizes their `Vec<u64>`: the time is the pushes',
    // not regrowth copies', and the segment stays tight (see `segment_bytes`).
    g.reserve(n)?;
    for i in 0..n {
        g.push(element(i))?;
    }
    Ok(t.elapsed())
}

/// Fills a map with the data set (key `element(i)`, value `i`); returns the time taken.
pub fn build_map<R: Repr>(map: &Map<u64, u64, R>, n: u64) -> anyhow::Result<Duration> {
    let t = Instant::now();
    for i in 0..n {
        map.insert(element(i), i)?;
    }
    Ok(t.elapsed())
}

/// One traversal of the list: the sum of its elements.
pub fn traverse_list<R: Repr>(list: &List<u64, R>) -> anyhow::Result<u64> {
    let g = list.lock()?;
    let mut sum = 0u64;
    for v in g.iter() {
        sum = sum.wrapping_add(v?);
    }
    Ok(black_box(sum))
}

/// One traversal of the vector: the sum of its elements.
pub fn sum_vec<R: Repr>(v: &SegVec<u64, R>) -> anyhow::Result<u64> {
    let g = v.read()?;
    Ok(black_box(sum(g.as_slice())))
}

/// The sum of `xs`: the element loop of every contiguous read pass (each strategy's and the
/// std `Vec` peer's). Out of line, so they all run this one copy of the machine code: a
/// loop this tight runs up to 1.6x faster or slower with where its copy lands (measured:
/// identical monomorphised copies took 8.4 and 13.6 us per pass over 1e5 elements), and a
/// row should differ only in how it reached the slice.
#[inline(never)]
pub fn sum(xs: &[u64]) -> u64 {
    xs.iter().fold(0u64, |s, x| s.wrapping_add(*x))
}

/// One lookup pass over the map: every key of the data set, the sum of the keys found
/// (equal to [`checksum`] when all are there).
pub fn lookup_map<R: Repr>(map: &Map<u64, u64, R>, n: u64) -> anyhow::Result<u64> {
    let g = map.read()?;
    let mut sum = 0u64;
    for i in 0..n {
        let k = element(i);
        if g.get(&k)?.is_some() {
            sum = sum.wrapping_add(k);
        }
    }
    Ok(black_box(sum))
}

/// `ops` list mutations (push one element to the back, pop one from the front), each under
/// the list's lock, so the length is unchanged when both processes are done.
pub fn mutate_list<R: Repr>(list: &List<u64, R>, ops: u64) -> anyhow::Result<Duration> {
    let t = Instant::now();
    for i in 0..ops {
        if i % 2 == 0 {
            list.push_back(element(i))?;
        } else {
            list.pop_front()?
                .context("the list ran empty while mutating")?;
        }
    }
    Ok(t.elapsed())
}

/// `ops` vector mutations: add one to an element, indices spread over the vector, each
/// under the vector's lock. In place, as the map's: a push/pop pair would regrow the
/// exactly sized buffer (a whole copy) on the first push.
pub fn mutate_vec<R: Repr>(v: &SegVec<u64, R>, n: u64, ops: u64) -> anyhow::Result<Duration> {
    let t = Instant::now();
    for i in 0..ops {
        let at = element(i) % n;
        let mut g = v.lock()?;
        let x = g
            .get(at)?
            .with_context(|| format!("element {at} vanished while mutating"))?;
        g.set(at, x.wrapping_add(1))?;
    }
    Ok(t.elapsed())
}

/// `ops` map mutations: add one to the value of an existing key, keys spread over the map.
pub fn mutate_map<R: Repr>(map: &Map<u64, u64, R>, n: u64, ops: u64) -> anyhow::Result<Duration> {
    let t = Instant::now();
    for i in 0..ops {
        let found = map.update(&element(i % n), |v| *v = v.wrapping_add(1))?;
        ensure!(found, "key {i} vanished while mutating");
    }
    Ok(t.elapsed())
}

/// Runs `pass` once cold (its time is returned first), then repeatedly until `budget`
/// is spent (at least once more, at most `max_reps` times); returns the cold time, the
/// median of the repeated passes and their count. Each pass must return `want`.
pub fn repeat(
    budget: Duration,
    max_reps: u32,
    want: u64,
    mut pass: impl FnMut() -> anyhow::Result<u64>,
) -> anyhow::Result<(Duration, Duration, u32)> {
    let mut timed = || -> anyhow::Result<Duration> {
        let t = Instant::now();
        let got = pass()?;
        let d = t.elapsed();
        ensure!(got == want, "a pass computed {got:#x}, expected {want:#x}");
        Ok(d)
    };
    let cold = timed()?;
    let start = Instant::now();
    let mut times = Vec::new();
    while times.is_empty() || (start.elapsed() < budget && times.len() < max_reps as usize) {
        times.push(timed()?);
    }
    times.sort();
    Ok((cold, times[times.len() / 2], times.len() as u32))
}

/// Mutation operations each of the two processes makes per round, at every size (the
/// per-operation cost is what is compared). Even, so the list's push/pop pairs leave its
/// length unchanged.
pub fn mutate_ops(quick: bool) -> u64 {
    if quick { 4_000 } else { 20_000 }
}

/// A list, a vector or a map of the data set, over pointer representation `R`: the code
/// every strategy shares, so a difference in time is the representation's.
pub enum Coll<R: Repr> {
    /// A list of `u64`.
    List(List<u64, R>),
    /// A vector of `u64`.
    Vec(SegVec<u64, R>),
    /// A map `u64 -> u64`.
    Map(Map<u64, u64, R>),
}

impl<R: Repr> Coll<R> {
    /// An empty collection in `arena`.
    pub fn create(
        s: Structure,
        arena: &relshm::collections::arena::Arena<R>,
    ) -> anyhow::Result<Self> {
        Ok(match s {
            Structure::List => Self::List(List::create(arena)?),
            Structure::Vec => Self::Vec(SegVec::create(arena)?),
            Structure::Map => Self::Map(Map::create(arena)?),
        })
    }

    /// The collection whose header is at `offset` of `arena`.
    pub fn open(
        s: Structure,
        arena: &relshm::collections::arena::Arena<R>,
        offset: u64,
    ) -> anyhow::Result<Self> {
        Ok(match s {
            Structure::List => Self::List(List::open(arena, offset)?),
            Structure::Vec => Self::Vec(SegVec::open(arena, offset)?),
            Structure::Map => Self::Map(Map::open(arena, offset)?),
        })
    }

    /// Offset of the header in the segment.
    pub fn offset(&self) -> u64 {
        match self {
            Self::List(l) => l.offset(),
            Self::Vec(v) => v.offset(),
            Self::Map(m) => m.offset(),
        }
    }

    /// Fills the collection with `n` elements of the data set.
    pub fn build(&self, n: u64) -> anyhow::Result<Duration> {
        match self {
            Self::List(l) => build_list(l, n),
            Self::Vec(v) => build_vec(v, n),
            Self::Map(m) => build_map(m, n),
        }
    }

    /// One read pass (traversal, or lookup of every key); returns its checksum.
    pub fn read_pass(&self, n: u64) -> anyhow::Result<u64> {
        match self {
            Self::List(l) => traverse_list(l),
            Self::Vec(v) => sum_vec(v),
            Self::Map(m) => lookup_map(m, n),
        }
    }

    /// `ops` mutations that leave the element count unchanged.
    pub fn mutate(&self, n: u64, ops: u64) -> anyhow::Result<Duration> {
        match self {
            Self::List(l) => mutate_list(l, ops),
            Self::Vec(v) => mutate_vec(v, n, ops),
            Self::Map(m) => mutate_map(m, n, ops),
        }
    }

    /// Walks and checks every link; returns the element count.
    pub fn verify(&self) -> anyhow::Result<u64> {
        Ok(match self {
            Self::List(l) => l.verify()?,
            Self::Vec(v) => v.verify()?,
            Self::Map(m) => m.verify()?,
        })
    }
}
