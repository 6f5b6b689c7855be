//! The arenas of the strategies that share a structure in place (their position-independent
//! image is the segment's data as it is: [`Segment::data_image`]).

use relshm::collections::arena::Arena;
use relshm::ptr::{BaseRel, Offset, Raw, Repr, SegRel};
use relshm::segment::Segment;

/// A strategy whose structures every process uses in place, through an arena made
/// straight from the segment.
pub trait SharedArena: Repr {
    /// This process's arena over `seg`.
    fn arena(seg: &Segment) -> anyhow::Result<Arena<Self>>;
}

impl SharedArena for Raw {
    fn arena(seg: &Segment) -> anyhow::Result<Arena<Self>> {
        Ok(Arena::<Raw>::fixed(seg)?)
    }
}

impl SharedArena for Offset {
    fn arena(seg: &Segment) -> anyhow::Result<Arena<Self>> {
        Ok(Arena::<Offset>::new(seg)?)
    }
}

impl SharedArena for BaseRel {
    fn arena(seg: &Segment) -> anyhow::Result<Arena<Self>> {
        Ok(Arena::<BaseRel>::new(seg)?)
    }
}

impl SharedArena for SegRel {
    fn arena(seg: &Segment) -> anyhow::Result<Arena<Self>> {
        Ok(Arena::<SegRel>::new(seg)?)
    }
}
