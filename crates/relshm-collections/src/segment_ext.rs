//! [`SegmentExt`]: named collections with the default strategy, straight from a [`Segment`].

use crate::arena::{Arena, Result};
use crate::bytes_map::BytesMap;
use crate::list::List;
use crate::map::{Map, MapKey};
use crate::queue::{Queue, QueueConfig};
use crate::vec::Vec;
use bytemuck::Pod;
use relshm_ptr::BaseRel;
use relshm_segment::Segment;

/// Makes and finds named collections in a segment with the default strategy
/// ([`BaseRel`](relshm_ptr::BaseRel): shared in place at any address, a hop as cheap as a
/// raw pointer's). Each method is the collection's `create_named`/`open_named` over
/// [`Arena::new`]; name the strategy through those for another one.
///
/// ```
/// use relshm_collections::SegmentExt;
/// use relshm_segment::{CreateOptions, Placement, Segment};
///
/// let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
/// let counts = seg.create_map::<u64, u64>("counts")?;
/// counts.insert(7, 1)?;
///
/// let elsewhere = seg.reopen(Placement::Anywhere)?; // as another process would
/// assert_eq!(elsewhere.open_map::<u64, u64>("counts")?.get(&7)?, Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait SegmentExt {
    /// Creates an empty [`Map`] recorded under `name`.
    fn create_map<K: MapKey, V: Pod>(&self, name: &str) -> Result<Map<K, V>>;
    /// Opens the [`Map`] recorded under `name`, checking its key and value types.
    fn open_map<K: MapKey, V: Pod>(&self, name: &str) -> Result<Map<K, V>>;
    /// Creates an empty [`List`] recorded under `name`.
    fn create_list<T: Pod>(&self, name: &str) -> Result<List<T>>;
    /// Opens the [`List`] recorded under `name`, checking its element type.
    fn open_list<T: Pod>(&self, name: &str) -> Result<List<T>>;
    /// Creates an empty [`Queue`] of `T`s laid out as `config`, recorded under `name`.
    fn create_queue<T: Pod>(&self, name: &str, config: QueueConfig) -> Result<Queue<T>>;
    /// Opens the [`Queue`] recorded under `name`, checking its element type.
    fn open_queue<T: Pod>(&self, name: &str) -> Result<Queue<T>>;
    /// Creates an empty [`BytesMap`] recorded under `name`.
    fn create_bytes_map(&self, name: &str) -> Result<BytesMap>;
    /// Opens the [`BytesMap`] recorded under `name`.
    fn open_bytes_map(&self, name: &str) -> Result<BytesMap>;
    /// Creates an empty [`Vec`] recorded under `name`.
    fn create_vec<T: Pod>(&self, name: &str) -> Result<Vec<T>>;
    /// Opens the [`Vec`] recorded under `name`, checking its element type.
    fn open_vec<T: Pod>(&self, name: &str) -> Result<Vec<T>>;
}

impl SegmentExt for Segment {
    fn create_map<K: MapKey, V: Pod>(&self, name: &str) -> Result<Map<K, V>> {
        Map::create_named(&Arena::<BaseRel>::new(self)?, name)
    }

    fn open_map<K: MapKey, V: Pod>(&self, name: &str) -> Result<Map<K, V>> {
        Map::open_named(&Arena::<BaseRel>::new(self)?, name)
    }

    fn create_list<T: Pod>(&self, name: &str) -> Result<List<T>> {
        List::create_named(&Arena::<BaseRel>::new(self)?, name)
    }

    fn open_list<T: Pod>(&self, name: &str) -> Result<List<T>> {
        List::open_named(&Arena::<BaseRel>::new(self)?, name)
    }

    fn create_queue<T: Pod>(&self, name: &str, config: QueueConfig) -> Result<Queue<T>> {
        Queue::create_named(&Arena::<BaseRel>::new(self)?, name, config)
    }

    fn open_queue<T: Pod>(&self, name: &str) -> Result<Queue<T>> {
        Queue::open_named(&Arena::<BaseRel>::new(self)?, name)
    }

    fn create_bytes_map(&self, name: &str) -> Result<BytesMap> {
        BytesMap::create_named(&Arena::<BaseRel>::new(self)?, name)
    }

    fn open_bytes_map(&self, name: &str) -> Result<BytesMap> {
        BytesMap::open_named(&Arena::<BaseRel>::new(self)?, name)
    }

    fn create_vec<T: Pod>(&self, name: &str) -> Result<Vec<T>> {
        Vec::create_named(&Arena::<BaseRel>::new(self)?, name)
    }

    fn open_vec<T: Pod>(&self, name: &str) -> Result<Vec<T>> {
        Vec::open_named(&Arena::<BaseRel>::new(self)?, name)
    }
}
