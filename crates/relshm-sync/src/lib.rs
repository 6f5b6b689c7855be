//! In-segment futex locks for shared memory.
