//! Peers from the serialisation world, on the same data set: `rkyv` (relative pointers,
//! read in place with and without validation) and `postcard` (serialise, deserialise: the
//! copy-time baseline of serialisation). Lists are `Vec<u64>` there (contiguous), maps are
//! `std::collections::HashMap<u64, u64>` (rkyv archives it as its own hash table).
//!
//! The bytes cross to "another address" by being copied into a fresh buffer, as they would
//! be read from shared memory mapped elsewhere; both peers run in this process.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context;
use rkyv::rancor::Error as RkyvError;
use rkyv::rend::u64_le;
use rkyv::util::AlignedVec;

use super::strategy::Budget;
use super::workload::{Structure, checksum, element, repeat};

/// A peer library and how it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// rkyv, archive checked (`rkyv::access`) before use.
    RkyvValidated,
    /// rkyv, archive trusted (`rkyv::access_unchecked`).
    RkyvUnchecked,
    /// postcard: serialise, deserialise into std collections.
    Postcard,
}

impl Peer {
    /// Every peer.
    pub const ALL: [Peer; 3] = [Self::RkyvValidated, Self::RkyvUnchecked, Self::Postcard];

    /// Name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::RkyvValidated => "rkyv-validated",
            Self::RkyvUnchecked => "rkyv-unchecked",
            Self::Postcard => "postcard",
        }
    }
}

/// What a peer measured (the same workloads as a strategy, without mutation).
#[derive(Debug)]
pub struct PeerRun {
    /// Building the native collection.
    pub build: Duration,
    /// Serialise, copy to a fresh buffer, access or deserialise there.
    pub handover: Duration,
    /// First read pass after the handover.
    pub first: Duration,
    /// Median of the repeated read passes.
    pub steady: Duration,
    /// Repeated read passes.
    pub reps: u32,
    /// Serialise.
    pub export: Duration,
    /// Copy to a fresh buffer, access or deserialise.
    pub import: Duration,
}

enum Native {
    List(Vec<u64>),
    Map(HashMap<u64, u64>),
}

impl Native {
    fn build(s: Structure, n: u64) -> Self {
        match s {
            Structure::List => Self::List((0..n).map(element).collect()),
            Structure::Map => Self::Map((0..n).map(|i| (element(i), i)).collect()),
        }
    }

    fn read_pass(&self, n: u64) -> u64 {
        match self {
            Self::List(v) => v.iter().fold(0u64, |s, x| s.wrapping_add(*x)),
            Self::Map(m) => (0..n)
                .map(element)
                .filter(|k| m.contains_key(k))
                .fold(0u64, |s, k| s.wrapping_add(k)),
        }
    }

    fn serialize_rkyv(&self) -> anyhow::Result<AlignedVec> {
        Ok(match self {
            Self::List(v) => rkyv::to_bytes::<RkyvError>(v)?,
            Self::Map(m) => rkyv::to_bytes::<RkyvError>(m)?,
        })
    }

    fn serialize_postcard(&self) -> anyhow::Result<Vec<u8>> {
        Ok(match self {
            Self::List(v) => postcard::to_allocvec(v)?,
            Self::Map(m) => postcard::to_allocvec(m)?,
        })
    }
}

type ArchivedList = rkyv::Archived<Vec<u64>>;
type ArchivedMap = rkyv::Archived<HashMap<u64, u64>>;

/// The root of an rkyv archive of type `T`, checked first if `validate`.
fn access<T>(bytes: &[u8], validate: bool) -> anyhow::Result<&T>
where
    T: rkyv::Portable
        + for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, RkyvError>>,
{
    if validate {
        Ok(rkyv::access::<T, RkyvError>(bytes)?)
    } else {
        // SAFETY: the bytes are an archive of a `T` that this process wrote with
        // rkyv::to_bytes a moment ago (the unchecked peer trusts its input).
        Ok(unsafe { rkyv::access_unchecked::<T>(bytes) })
    }
}

/// The accessed root of an archive.
#[derive(Clone, Copy)]
enum Root<'a> {
    List(&'a ArchivedList),
    Map(&'a ArchivedMap),
}

fn rkyv_list_pass(v: &ArchivedList) -> u64 {
    v.iter().fold(0u64, |s, x| s.wrapping_add(x.to_native()))
}

fn rkyv_map_pass(m: &ArchivedMap, n: u64) -> u64 {
    (0..n)
        .map(element)
        .filter(|k| m.contains_key(&u64_le::from_native(*k)))
        .fold(0u64, |s, k| s.wrapping_add(k))
}

/// Copies `bytes` to a fresh aligned buffer: the archive at another address.
fn moved(bytes: &[u8]) -> AlignedVec {
    let mut v = AlignedVec::with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    v
}

/// Runs `peer` on `n` elements of `s`.
pub fn run(s: Structure, peer: Peer, n: u64, budget: Budget) -> anyhow::Result<PeerRun> {
    let t = Instant::now();
    let native = Native::build(s, n);
    let build = t.elapsed();
    let want = checksum(n);
    let (export, import, reads) = match peer {
        Peer::RkyvValidated | Peer::RkyvUnchecked => {
            let validate = peer == Peer::RkyvValidated;
            let t = Instant::now();
            let bytes = native.serialize_rkyv()?;
            let export = t.elapsed();
            let t = Instant::now();
            let there = moved(&bytes);
            // Accessing is what a reader does once: the validated peer checks the whole
            // archive here, then reads through the checked reference.
            let root = match s {
                Structure::List => Root::List(access::<ArchivedList>(&there, validate)?),
                Structure::Map => Root::Map(access::<ArchivedMap>(&there, validate)?),
            };
            let import = t.elapsed();
            let reads = repeat(budget.read, budget.max_reps, want, || {
                Ok(match root {
                    Root::List(l) => black_box(rkyv_list_pass(l)),
                    Root::Map(m) => black_box(rkyv_map_pass(m, n)),
                })
            });
            (export, import, reads)
        }
        Peer::Postcard => {
            let t = Instant::now();
            let bytes = native.serialize_postcard()?;
            let export = t.elapsed();
            let t = Instant::now();
            let there = bytes.clone();
            let copy = match s {
                Structure::List => Native::List(postcard::from_bytes(&there)?),
                Structure::Map => Native::Map(postcard::from_bytes(&there)?),
            };
            let import = t.elapsed();
            let reads = repeat(budget.read, budget.max_reps, want, || Ok(copy.read_pass(n)));
            (export, import, reads)
        }
    };
    let (first, steady, reps) = reads.with_context(|| format!("{} {}", peer.name(), s.name()))?;
    Ok(PeerRun {
        build,
        handover: export + import,
        first,
        steady,
        reps,
        export,
        import,
    })
}
