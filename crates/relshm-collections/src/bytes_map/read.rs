//! Reads of a [`BytesMap`](super::BytesMap): lock-free copy-out lookups (see the module
//! docs and `seqlock` for the protocol), and [`BytesMapReadGuard`], which lends
//! values in place with the locks held shared.

use super::layout::{MAX_LOG2, MIN_LOG2};
use super::{Head, Node, View, hash_bytes};
use crate::arena::Result;
use crate::map::{STRIPES, entries, hold_stripes_shared};
use crate::racy;
use crate::seqlock::Attempt;
use core::sync::atomic::Ordering::{Acquire, Relaxed};
use core::sync::atomic::fence;
use relshm_ptr::Repr;
use relshm_sync::Held;

/// Optimistic attempts before a reader falls back to the stripe lock.
const TRIES: u32 = 4;
/// Key bytes compared per racy chunk.
const CHUNK: usize = 64;

impl<'a, R: Repr> View<'a, R> {
    /// Copies the value under `key` into `out`; whether the key is there.
    pub(crate) fn get_into(&self, key: &[u8], out: &mut std::vec::Vec<u8>) -> Result<bool> {
        self.lookup(key, Some(out))
    }

    /// Whether `key` is there.
    pub(crate) fn contains_key(&self, key: &[u8]) -> Result<bool> {
        self.lookup(key, None)
    }

    fn lookup(&self, key: &[u8], mut out: Option<&mut std::vec::Vec<u8>>) -> Result<bool> {
        let hash = hash_bytes(key);
        for _ in 0..TRIES {
            match self.optimistic(key, hash, out.as_deref_mut()) {
                Attempt::Hit(()) => return Ok(true),
                Attempt::Miss => return Ok(false),
                Attempt::Retry => continue,
                Attempt::Locked => break,
            }
        }
        self.with_stripe(key, false, |_, found| {
            let Some((_, n)) = found else {
                return Ok(false);
            };
            if let Some(out) = out {
                out.clear();
                out.extend_from_slice(self.kv(n)?.1);
            }
            Ok(true)
        })
    }

    /// One attempt without locks.
    fn optimistic(
        &self,
        key: &[u8],
        hash: u64,
        out: Option<&mut std::vec::Vec<u8>>,
    ) -> Attempt<()> {
        let (hdr, ctx) = (self.hdr, self.ctx());
        let e1 = hdr.epoch.load(Acquire);
        if e1 & 1 == 1 {
            return Attempt::Locked;
        }
        let Ok(Some(t)) = hdr.table.get(ctx) else {
            return Attempt::Locked;
        };
        let log2 = t.log2.load(Relaxed);
        if !(MIN_LOG2..=MAX_LOG2).contains(&log2) {
            return Attempt::Locked;
        }
        let Ok(Some(heads)) = t.heads.get_slice(ctx, 1 << log2) else {
            return Attempt::Locked;
        };
        let b = hash & ((1 << log2) - 1);
        let st = &hdr.stripes[b as usize % STRIPES];
        let s1 = st.seq.load(Acquire);
        if s1 & 1 == 1 {
            return Attempt::Locked;
        }
        let stable = || {
            fence(Acquire);
            st.seq.load(Relaxed) == s1 && hdr.epoch.load(Relaxed) == e1
        };
        let mut pred: &Head<R> = &heads[b as usize];
        let mut left = self.max_nodes();
        loop {
            let n = match pred.get(ctx) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    return if stable() {
                        Attempt::Miss
                    } else {
                        Attempt::Retry
                    };
                }
                Err(_) => return Attempt::Locked,
            };
            if n.hash.load(Relaxed) == hash && n.key_len.load(Relaxed) as usize == key.len() {
                let Some(bytes) = RacyBytes::of(ctx, n, key.len()) else {
                    return Attempt::Locked;
                };
                if bytes.key_is(key) {
                    if let Some(out) = out {
                        bytes.copy_value(out);
                    }
                    return if stable() {
                        Attempt::Hit(())
                    } else {
                        Attempt::Retry
                    };
                }
            }
            left -= 1;
            if left == 0 {
                return Attempt::Locked;
            }
            pred = &n.next;
        }
    }

    /// Takes read access to the whole map (see [`BytesMapReadGuard`]).
    pub(crate) fn read(&self) -> Result<BytesMapReadGuard<'a, R>> {
        let global = self.global_shared()?;
        let m = *self;
        let stripes = hold_stripes_shared(&self.hdr.stripes, |s| m.repaired(m.fix_stripe(s)))?;
        let (_, log2, heads) = self.table()?;
        Ok(BytesMapReadGuard {
            map: *self,
            heads,
            mask: (1 << log2) - 1,
            _stripes: stripes,
            _global: global,
        })
    }
}

/// A node's key and value bytes as a lock-free reader sees them: the value's length read
/// once, the bytes resolved once for the key and value lengths (checked to lie in the
/// mapping whatever they are), then read with racy word copies only. What it reads may
/// be torn or stale; the caller's seqlock validation decides.
struct RacyBytes {
    first: *const u8,
    key_len: usize,
    value_len: usize,
}

impl RacyBytes {
    /// Node `n`'s bytes for a key of `key_len` bytes (`None`: they do not resolve, so the
    /// reader takes the lock).
    fn of<R: Repr>(ctx: &R::Ctx, n: &Node<R>, key_len: usize) -> Option<Self> {
        let value_len = n.value_len.load(Relaxed) as usize;
        let len = (key_len + value_len) as u64;
        let first = match n.bytes.get_array_ptr(ctx, len) {
            Ok(Some(p)) => p.as_ptr().cast_const(),
            Ok(None) if len == 0 => core::ptr::null(),
            _ => return None,
        };
        Some(Self {
            first,
            key_len,
            value_len,
        })
    }

    /// Whether the key bytes are `key` (of the length `of` was given).
    fn key_is(&self, key: &[u8]) -> bool {
        let mut buf = [0u8; CHUNK];
        key.chunks(CHUNK).enumerate().all(|(i, want)| {
            let got = &mut buf[..want.len()];
            // SAFETY: `key_len + value_len` bytes from `first` were checked to lie in the
            // mapping (their covering words too: nodes are 8-aligned and the mapping whole
            // pages); racy word loads only.
            unsafe { racy::read_bytes(self.first.add(i * CHUNK), got) };
            got == want
        })
    }

    /// Copies the value into `out` (replacing its contents).
    fn copy_value(&self, out: &mut std::vec::Vec<u8>) {
        out.clear();
        if self.value_len == 0 {
            return;
        }
        out.resize(self.value_len, 0);
        // SAFETY: as in `key_is`.
        unsafe { racy::read_bytes(self.first.add(self.key_len), out) };
    }
}

/// Read access to a whole [`BytesMap`](super::BytesMap): the map and every stripe held
/// shared (writers wait; readers in other processes do not). Values are lent in place:
/// like an LMDB read transaction, nothing is copied.
pub struct BytesMapReadGuard<'a, R: Repr> {
    map: View<'a, R>,
    heads: &'a [Head<R>],
    mask: u64,
    // Released in this order: stripes, then the map.
    _stripes: std::vec::Vec<Held<'a>>,
    _global: Held<'a>,
}

impl<'a, R: Repr> BytesMapReadGuard<'a, R> {
    /// The value under `key`, in place.
    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>> {
        let hash = hash_bytes(key);
        let head = &self.heads[(hash & self.mask) as usize];
        match self.map.find(head, hash, key)? {
            Some((_, n)) => Ok(Some(self.map.kv(n)?.1)),
            None => Ok(None),
        }
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        entries(&self.map.hdr.stripes)
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` on every entry (key, value), in bucket order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        for head in self.heads {
            self.map.for_chain(head, |n| {
                let (k, v) = self.map.kv(n)?;
                f(k, v);
                Ok(())
            })?;
        }
        Ok(())
    }
}
