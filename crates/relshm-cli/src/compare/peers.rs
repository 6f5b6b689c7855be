//! Peers from the serialisation world, on the same data set: `rkyv` (relative pointers,
//! read in place with and without validation) and `postcard` (serialise, deserialise: the
//! copy-time baseline of serialisation). They run where they have a collection of the
//! structure's shape (see [`native`]): vectors are `Vec<u64>` there, maps
//! `std::collections::HashMap<u64, u64>` (rkyv archives it as its own hash table). Lists
//! have no peer: a `Vec<u64>` beside a linked list would compare a contiguous walk with a
//! pointer chase, so the peers' `Vec<u64>` is measured beside relshm's vector instead.
//!
//! The bytes cross to "another address" by being copied into a fresh buffer, as they would
//! be read from shared memory mapped elsewhere; both peers run in this process.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rkyv::rancor::Error as RkyvError;
use rkyv::rend::u64_le;
use rkyv::util::AlignedVec;

use super::json::Shape;
use super::strategy::Budget;
use super::workload::{Structure, checksum, element, repeat, sum};

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

/// The std collection the peers build for structure `s`, and its shape; `None` where they
/// have none of `s`'s shape (a linked list: rkyv archives no `std::collections::LinkedList`).
pub fn native(s: Structure) -> Option<(&'static str, Shape)> {
    match s {
        Structure::List => None,
        Structure::Vec => Some(("std Vec<u64>", Shape::Contiguous)),
        Structure::Map => Some(("std HashMap<u64, u64>", Shape::Hash)),
    }
}

/// What a peer measured (the same workloads as a strategy, without mutation).
#[derive(Debug)]
pub struct PeerRun {
    /// The std collection built, serialised and read.
    pub what: &'static str,
    /// Its shape.
    pub shape: Shape,
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
    Vec(Vec<u64>),
    Map(HashMap<u64, u64>),
}

impl Native {
    fn build(shape: Shape, n: u64) -> anyhow::Result<Self> {
        Ok(match shape {
            Shape::Contiguous => Self::Vec((0..n).map(element).collect()),
            Shape::Hash => Self::Map((0..n).map(|i| (element(i), i)).collect()),
            Shape::Linked => bail!("the peers build no linked collection"),
        })
    }

    fn read_pass(&self, n: u64) -> u64 {
        match self {
            Self::Vec(v) => sum(v),
            Self::Map(m) => (0..n)
                .map(element)
                .filter(|k| m.contains_key(k))
                .fold(0u64, |s, k| s.wrapping_add(k)),
        }
    }

    fn serialize_rkyv(&self) -> anyhow::Result<AlignedVec> {
        Ok(match self {
            Self::Vec(v) => rkyv::to_bytes::<RkyvError>(v)?,
            Self::Map(m) => rkyv::to_bytes::<RkyvError>(m)?,
        })
    }

    fn serialize_postcard(&self) -> anyhow::Result<Vec<u8>> {
        Ok(match self {
            Self::Vec(v) => postcard::to_allocvec(v)?,
            Self::Map(m) => postcard::to_allocvec(m)?,
        })
    }
}

type ArchivedVec = rkyv::Archived<Vec<u64>>;
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
    Vec(&'a ArchivedVec),
    Map(&'a ArchivedMap),
}

// A `u64_le` is one little-endian `u64` word (rend guarantees its size and alignment).
const _: () = assert!(size_of::<u64_le>() == 8 && align_of::<u64_le>() == 8);

/// Through the loop every contiguous row shares ([`sum`]), where the archived words are
/// native ones: the peer then differs from relshm's `vec` only in how it reached them.
fn rkyv_vec_pass(v: &ArchivedVec) -> u64 {
    if cfg!(target_endian = "little") {
        // SAFETY: `u64_le` is a `u64` of little-endian bytes with the same size and
        // alignment (checked above), which on this little-endian target are the native
        // `u64`'s bytes; every bit pattern is a valid `u64`, and the slice borrows `v`.
        sum(unsafe { core::slice::from_raw_parts(v.as_ptr().cast::<u64>(), v.len()) })
    } else {
        v.iter().fold(0u64, |s, x| s.wrapping_add(x.to_native()))
    }
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

/// Runs `peer` on `n` elements of `s` (a structure [`native`] has a collection for).
pub fn run(s: Structure, peer: Peer, n: u64, budget: Budget) -> anyhow::Result<PeerRun> {
    let (what, shape) = native(s)
        .with_context(|| format!("the peers have no collection of a {}'s shape", s.name()))?;
    let t = Instant::now();
    let native = Native::build(shape, n)?;
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
            let root = match native {
                Native::Vec(_) => Root::Vec(access::<ArchivedVec>(&there, validate)?),
                Native::Map(_) => Root::Map(access::<ArchivedMap>(&there, validate)?),
            };
            let import = t.elapsed();
            let reads = repeat(budget.read, budget.max_reps, want, || {
                Ok(match root {
                    Root::Vec(v) => black_box(rkyv_vec_pass(v)),
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
            let copy = match native {
                Native::Vec(_) => Native::Vec(postcard::from_bytes(&there)?),
                Native::Map(_) => Native::Map(postcard::from_bytes(&there)?),
            };
            let import = t.elapsed();
            let reads = repeat(budget.read, budget.max_reps, want, || Ok(copy.read_pass(n)));
            (export, import, reads)
        }
    };
    let (first, steady, reps) = reads.with_context(|| format!("{} {}", peer.name(), s.name()))?;
    Ok(PeerRun {
        what,
        shape,
        build,
        handover: export + import,
        first,
        steady,
        reps,
        export,
        import,
    })
}
