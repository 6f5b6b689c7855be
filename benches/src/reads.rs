//! The data sets and read paths of the `reads` bench (relshm's `Vec` and `BytesMap` against
//! `std` and LMDB), kept here so that its test checks every path reads the same values, and
//! the recorder that turns the bench's criterion samples into its table of ratios.

use heed::types::Bytes;
use relshm::collections::arena::Arena;
use relshm::collections::bytes_map::BytesMap;
use relshm::collections::vec::Vec as ShmVec;
use relshm::prelude::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Element counts of the vector sums.
pub const VEC_SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
/// Value lengths of the map lookups.
pub const VALUE_SIZES: [usize; 3] = [16, 256, 4096];
/// Keys in each map.
pub const MAP_KEYS: usize = 10_000;

/// The same `u64`s in a relshm vector (in its own unnamed segment) and in a std one.
pub struct VecPair {
    pub shm: ShmVec<u64>,
    pub std: Vec<u64>,
}

impl VecPair {
    pub fn new(n: usize) -> anyhow::Result<Self> {
        let std: Vec<u64> = (0..n as u64).collect();
        // Room for the buffer twice over (a growing vector may hold an old and a new
        // buffer at once) plus the segment's own structures; untouched pages cost nothing.
        let seg = Segment::create_unnamed(&CreateOptions::new(2 * 8 * n as u64 + (1 << 20)))?;
        let shm = ShmVec::<u64>::create(&Arena::new(&seg)?)?;
        shm.extend_from_slice(&std)?;
        Ok(Self { shm, std })
    }
}

/// The one summing loop of every path: not inlined, so that each path runs the same
/// machine code and the ratios measure where the elements are, not how the compiler
/// unrolled a loop in each caller.
#[inline(never)]
pub fn sum(elems: &[u64]) -> u64 {
    elems.iter().sum()
}

/// Sum through the shared-lock read guard, borrowing the elements in the segment.
pub fn sum_read(v: &ShmVec<u64>) -> Result<u64, relshm::Error> {
    Ok(sum(v.read()?.as_slice()))
}

/// Sum of the lock-free copy of every element.
pub fn sum_copied(v: &ShmVec<u64>) -> Result<u64, relshm::Error> {
    Ok(sum(&v.to_vec()?))
}

/// Distinct byte-string keys with their values, and the order the bench looks them up in.
pub struct Pairs {
    pub keys: Vec<Vec<u8>>,
    pub values: Vec<Vec<u8>>,
    /// Indices into `keys`, random, of a power-of-two length (see [`Pairs::key`]).
    order: Vec<u32>,
}

impl Pairs {
    /// `n` distinct keys of 12 to 20 bytes (16 on average) with values of `value_len`
    /// bytes; the same for the same arguments.
    pub fn new(n: usize, value_len: usize) -> Self {
        let mut rng = fastrand::Rng::with_seed(0x5eed ^ value_len as u64);
        let mut seen = HashSet::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        while keys.len() < n {
            let key: Vec<u8> = (0..rng.usize(12..=20))
                .map(|_| rng.alphanumeric() as u8)
                .collect();
            if seen.insert(key.clone()) {
                keys.push(key);
            }
        }
        let values = (0..n)
            .map(|i| (0..value_len).map(|j| (i * 31 + j) as u8).collect())
            .collect();
        // Many more lookups than keys, so that the walk does not favour the keys the
        // caches saw last time round.
        let order = (0..(4 * n).next_power_of_two())
            .map(|_| rng.u32(..n as u32))
            .collect();
        Self {
            keys,
            values,
            order,
        }
    }

    /// The key of the `i`th lookup (wrapping).
    #[inline]
    pub fn key(&self, i: usize) -> &[u8] {
        &self.keys[self.order[i & (self.order.len() - 1)] as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.keys
            .iter()
            .zip(&self.values)
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// Bytes of keys and values together.
    pub fn bytes(&self) -> usize {
        self.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// The pairs in a std map.
pub fn std_map(pairs: &Pairs) -> HashMap<Vec<u8>, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// The pairs in a relshm map, in a segment of its own.
pub fn shm_map(pairs: &Pairs) -> anyhow::Result<BytesMap> {
    // Each entry is one block (a node of a few words, the key and the value): twice the
    // data plus room for the bucket tables (old and new while it grows) is ample.
    let seg = Segment::create_unnamed(&CreateOptions::new(2 * pairs.bytes() as u64 + (16 << 20)))?;
    let m = BytesMap::create(&Arena::new(&seg)?)?;
    for (k, v) in pairs.iter() {
        m.insert(k, v)?;
    }
    Ok(m)
}

/// The pairs in an LMDB environment of its own (its unnamed database), in a temporary
/// directory removed on drop.
pub struct Lmdb {
    pub env: heed::Env,
    // After `env`: dropped after the environment that lives in it.
    _dir: tempfile::TempDir,
}

/// heed's database handle borrows its environment.
pub type LmdbDb<'e> = heed::Database<'e, Bytes, Bytes>;

impl Lmdb {
    pub fn load(pairs: &Pairs) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // A 4 KiB value takes two 4 KiB overflow pages: four times the data, plus room
        // for the tree, is ample (the file is sparse).
        let map_size = (4 * pairs.bytes() + (64 << 20)).next_multiple_of(page_size());
        // SAFETY: the environment lives in a fresh private directory that nothing else
        // opens, maps or modifies while it is open.
        let env = unsafe {
            heed::EnvOpenOptions::new()
                .map_size(map_size)
                .open(dir.path())?
        };
        env.create_databases_and_commit(env.write_txn()?, |opener, w| {
            let db: LmdbDb<'_> = opener.create_database(w, None)?;
            for (k, v) in pairs.iter() {
                db.put(w, k, v)?;
            }
            Ok::<_, heed::Error>(heed::CommitOrAbort::<_, ()>::Commit(()))
        })?;
        Ok(Self { env, _dir: dir })
    }

    /// The database the pairs are in.
    pub fn db(&self) -> anyhow::Result<LmdbDb<'_>> {
        self.env
            .open_databases_and_commit(self.env.read_txn()?, |opener, r| {
                let db = opener.open_database(r, None)?;
                Ok::<_, heed::Error>(heed::CommitOrAbort::<_, ()>::Commit(db))
            })?
            .unwrap_commit()
            .ok_or_else(|| anyhow::anyhow!("LMDB's unnamed database is missing"))
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096)
}

/// Records the time of each criterion sample, by bench, so that the ratios between
/// benches printed at the end come from the very samples criterion reported.
///
/// Criterion calls an `iter_custom` routine for its warm-up and then once per sample:
/// the last `sample_size` calls of a bench are its samples.
pub struct Samples {
    sample_size: usize,
    /// Nanoseconds per iteration of every call, by bench id.
    calls: RefCell<BTreeMap<String, Vec<f64>>>,
}

impl Samples {
    pub fn new(sample_size: usize) -> Self {
        Self {
            sample_size,
            calls: RefCell::default(),
        }
    }

    /// Runs `f` `iters` times, for the bench `id`; the time it took (for `iter_custom`).
    pub fn time<O>(&self, id: &str, iters: u64, mut f: impl FnMut() -> O) -> Duration {
        let t = Instant::now();
        for _ in 0..iters {
            black_box(f());
        }
        let took = t.elapsed();
        self.record(id, took.as_nanos() as f64 / iters.max(1) as f64);
        took
    }

    /// Notes one call of bench `id` that took `ns_per_iter` per iteration.
    pub fn record(&self, id: &str, ns_per_iter: f64) {
        self.calls
            .borrow_mut()
            .entry(id.to_owned())
            .or_default()
            .push(ns_per_iter);
    }

    /// Median time per iteration of bench `id` over its samples, in nanoseconds; `None`
    /// if it did not run (filtered out).
    pub fn median_ns(&self, id: &str) -> Option<f64> {
        let calls = self.calls.borrow();
        let all = calls.get(id)?;
        let mut last = all[all.len().saturating_sub(self.sample_size)..].to_vec();
        last.sort_by(f64::total_cmp);
        Some(last[last.len() / 2])
    }

    /// `median(num) / median(den)`, if both ran.
    pub fn ratio(&self, num: &str, den: &str) -> Option<f64> {
        Some(self.median_ns(num)? / self.median_ns(den)?)
    }
}

/// Bench ids, shared by the bench (which records them) and the table (which reads them).
pub fn vec_id(path: &str, n: usize) -> String {
    format!("vec_sum/{path}/{n}")
}

pub fn map_id(path: &str, value_len: usize) -> String {
    format!("bytes_map_get/{path}/{value_len}")
}

/// Bench paths of the vector sums.
pub const VEC_STD: &str = "std";
pub const VEC_READ: &str = "relshm read()";
pub const VEC_COPY: &str = "relshm to_vec()";

/// Bench paths of the map lookups.
pub const MAP_STD: &str = "std HashMap";
pub const MAP_LMDB: &str = "heed";
pub const MAP_LMDB_COPY: &str = "heed get + copy";
pub const MAP_GET_INTO: &str = "relshm get_into()";
pub const MAP_READ: &str = "relshm read().get()";

/// The table of ratios, one row per pair of paths, one column per size; empty when no
/// bench ran.
pub fn ratio_table(s: &Samples) -> String {
    if s.calls.borrow().is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nreads: time ratios from this run (medians of the samples above; < 1: relshm faster)\n",
    );
    let vec_cols: Vec<(String, usize)> = VEC_SIZES.iter().map(|&n| (format!("n={n}"), n)).collect();
    section(
        &mut out,
        s,
        "Vec<u64> sum",
        &vec_cols,
        &[
            ("read().iter() / std", VEC_READ, VEC_STD),
            ("to_vec() / std", VEC_COPY, VEC_STD),
        ],
        vec_id,
    );
    let map_cols: Vec<(String, usize)> =
        VALUE_SIZES.iter().map(|&n| (format!("{n} B"), n)).collect();
    section(
        &mut out,
        s,
        "BytesMap get",
        &map_cols,
        &[
            ("get_into() / std HashMap", MAP_GET_INTO, MAP_STD),
            ("get_into() / LMDB", MAP_GET_INTO, MAP_LMDB),
            ("get_into() / LMDB get+copy", MAP_GET_INTO, MAP_LMDB_COPY),
            ("read().get() / std HashMap", MAP_READ, MAP_STD),
            ("read().get() / LMDB", MAP_READ, MAP_LMDB),
            ("(LMDB / std HashMap)", MAP_LMDB, MAP_STD),
        ],
        map_id,
    );
    out
}

/// One block of [`ratio_table`]: `rows` are `(label, numerator path, denominator path)`.
fn section(
    out: &mut String,
    s: &Samples,
    title: &str,
    cols: &[(String, usize)],
    rows: &[(&str, &str, &str)],
    id: fn(&str, usize) -> String,
) {
    let _ = write!(out, "\n{title:<30}");
    for (label, _) in cols {
        let _ = write!(out, "{label:>10}");
    }
    out.push('\n');
    for (label, num, den) in rows {
        let _ = write!(out, "  {label:<28}");
        for &(_, param) in cols {
            let r = s.ratio(&id(num, param), &id(den, param));
            let _ = write!(
                out,
                "{:>10}",
                r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
            );
        }
        out.push('\n');
    }
}
