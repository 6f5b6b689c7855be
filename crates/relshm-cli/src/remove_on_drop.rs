//! [`RemoveOnDrop`]: a named segment that goes away however a run ends.

use relshm::segment::Segment;

/// Removes the segment name it holds when dropped (errors ignored: the name may already
/// be gone), so a run that fails or panics leaves no segment behind.
pub struct RemoveOnDrop<'a>(pub &'a str);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = Segment::remove_named(self.0);
    }
}
