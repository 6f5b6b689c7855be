//! [`MapReadGuard`]: read access to the whole map, for many lookups at the cost of one
//! set of lock acquisitions.

use super::buckets::Buckets;
use super::layout::INLINE;
use super::{MapKey, MapView, Slot, hash_key};
use super::{entries, hold_stripes_shared};
use crate::arena::{Result, corrupt};
use bytemuck::Pod;
use relshm_ptr::Repr;
use relshm_sync::Held;

/// Read access to a whole [`Map`](super::Map): the map and every stripe held shared (writers wait;
/// readers in other processes do not). The bucket chunks are resolved once, so a lookup
/// costs a hash and the bucket (its inline entries, then its chain).
pub struct MapReadGuard<'a, K, V, R: Repr> {
    map: MapView<'a, K, V, R>,
    buckets: Buckets<'a, K, V, R>,
    max: u64,
    // Released in this order: stripes, then the map.
    _stripes: Vec<Held<'a>>,
    _global: Held<'a>,
}

impl<'a, K: MapKey, V: Pod, R: Repr> MapView<'a, K, V, R> {
    /// Takes read access to the whole map (see [`MapReadGuard`]).
    pub fn read(&self) -> Result<MapReadGuard<'a, K, V, R>> {
        let global = self.global_shared()?;
        let m = *self;
        let stripes = hold_stripes_shared(&self.hdr.stripes, |s| m.repaired(m.fix_stripe(s)))?;
        let buckets = self.buckets_of_table()?;
        Ok(MapReadGuard {
            map: *self,
            buckets,
            max: self.max_nodes(),
            _stripes: stripes,
            _global: global,
        })
    }
}

impl<'a, K: MapKey, V: Pod, R: Repr> MapReadGuard<'a, K, V, R> {
    /// The value for `key`.
    ///
    /// Inlined into the caller, with the rare chain walk out of line: a lookup that misses
    /// in cache is hidden only by the lookups the CPU runs meanwhile, and how many fit in its
    /// window depends on the instructions each takes. Called out of line (returning its
    /// `Result` through memory), a lookup of a 1e5-entry map took 1.5x as long.
    #[inline(always)]
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let hash = hash_key(key);
        let slot = self.buckets.slot(hash);
        match slot.holds(hash, key) {
            Some(i) => Ok(Some(slot.entry(i).value)),
            None => self.chain_get(slot, hash, key),
        }
    }

    /// The value for `key` in `slot`'s chain.
    #[inline(never)]
    fn chain_get(&self, slot: &'a Slot<K, V, R>, hash: u64, key: &K) -> Result<Option<V>> {
        Ok(self.map.find_in_chain(slot, hash, key)?.map(|h| h.value()))
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> Result<bool> {
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

    /// Calls `f` on every entry, in bucket order.
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) -> Result<()> {
        let ctx = self.map.ctx();
        let mut left = self.max;
        for slot in self.buckets.iter() {
            for i in 0..INLINE {
                if slot.hash(i) != 0 {
                    let e = slot.entry(i);
                    f(&e.key, &e.value);
                }
            }
            let mut cur = slot.next.get(ctx)?;
            while let Some(n) = cur {
                f(&n.key, &n.value);
                left -= 1;
                if left == 0 {
                    return Err(corrupt("cycle in a bucket chain"));
                }
                cur = n.next.get(ctx)?;
            }
        }
        Ok(())
    }
}
