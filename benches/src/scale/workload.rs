//! The workloads: what each worker process does between the go and the stop.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use relshm::prelude::*;

use super::control::{self, Block};
use crate::PthreadRobust;

/// One workload of the harness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Every process increments one in-segment `Mutex<u64>`.
    Mutex,
    /// The reference for `mutex`: a robust, process-shared `pthread_mutex_t` in the segment.
    Pthread,
    /// The other reference for `mutex`: a plain ticket lock in the segment (FIFO hand-off,
    /// no owner-death recovery; spins, then yields).
    Ticket,
    /// Every process allocates and frees 64 bytes through a heap handle of the segment.
    Alloc,
    /// The same through `Segment::alloc`/`free`, the path the collections take.
    SegAlloc,
    /// The reference for `alloc`: each process's own `malloc` of 64 bytes.
    Malloc,
    /// Every process does 95% `get` / 5% insert-or-update on one `Map<u64, u64>`.
    Map,
    /// N/2 producer and N/2 consumer processes on one `Queue<u64>` of capacity 1024.
    Queue,
    /// The reference for `queue`: N/2 + N/2 threads on a crossbeam bounded channel (1024).
    Channel,
}

/// Directory name of the workload's collection.
const OBJECT_NAME: &str = "scale-object";
/// Capacity of the queues.
const QUEUE_CAPACITY: u32 = 1024;
/// How long a blocked queue endpoint waits before it looks at the stop flag again.
const QUEUE_POLL: Duration = Duration::from_millis(5);
/// Percent of map operations that write.
const MAP_WRITE_PERCENT: u64 = 5;

impl Workload {
    /// Every workload, in the order they are reported.
    pub const ALL: [Workload; 9] = [
        Workload::Mutex,
        Workload::Pthread,
        Workload::Ticket,
        Workload::Alloc,
        Workload::SegAlloc,
        Workload::Malloc,
        Workload::Map,
        Workload::Queue,
        Workload::Channel,
    ];

    /// The name on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Mutex => "mutex",
            Workload::Pthread => "pthread",
            Workload::Ticket => "ticket",
            Workload::Alloc => "alloc",
            Workload::SegAlloc => "seg-alloc",
            Workload::Malloc => "malloc",
            Workload::Map => "map",
            Workload::Queue => "queue",
            Workload::Channel => "channel",
        }
    }

    /// Whether a point needs producer/consumer pairs (an even number of workers, at least 2).
    pub fn pairs(self) -> bool {
        matches!(self, Workload::Queue | Workload::Channel)
    }

    /// Whether the workers are threads of this process rather than processes.
    pub fn threads(self) -> bool {
        self == Workload::Channel
    }

    /// Bytes the segment starts with (it may grow to a gibibyte).
    pub fn segment_size(self, keys: u64) -> u64 {
        let base = 8 << 20;
        match self {
            Workload::Map => base + keys * 128,
            _ => base,
        }
    }

    /// Makes the workload's shared object in a fresh segment.
    pub fn setup(self, seg: &Segment, block: &Block, keys: u64) -> anyhow::Result<()> {
        match self {
            Workload::Mutex => {
                seg.directory()?
                    .find_or_construct(OBJECT_NAME, || Mutex::new(0u64))?;
            }
            Workload::Pthread => {
                let at = lock_block(seg, block)?;
                // SAFETY: `lock_block` returned 64 fresh bytes, 64-aligned, in a mapping that
                // stays alive while the workers use it (the parent keeps the segment until
                // they exit).
                unsafe { PthreadRobust::init(at) };
            }
            Workload::Ticket => {
                // A fresh heap block is not zeroed: start both counters at 0.
                ticket_words(lock_block(seg, block)?)
                    .iter()
                    .for_each(|w| w.store(0, Ordering::Release));
            }
            Workload::Map => {
                let map = seg.create_map::<u64, u64>(OBJECT_NAME)?;
                for k in 0..keys {
                    map.insert(k, 0)?;
                }
            }
            Workload::Queue => {
                seg.create_queue::<u64>(OBJECT_NAME, QueueConfig::with_capacity(QUEUE_CAPACITY))?;
            }
            Workload::Alloc | Workload::SegAlloc | Workload::Malloc | Workload::Channel => {}
        }
        Ok(())
    }

    /// A worker's whole life: open the object, meet at the barrier, run until stopped;
    /// returns the operations it completed.
    pub fn work(
        self,
        seg: &Segment,
        block: &Block,
        role: u32,
        workers: u32,
        keys: u64,
    ) -> anyhow::Result<u64> {
        match self {
            Workload::Mutex => {
                let dir = seg.directory()?;
                let m = dir.find::<Mutex<u64>>(OBJECT_NAME)?;
                let m = m.get();
                control::ready_then_wait(block)?;
                control::run_until_stopped(block, || {
                    *m.lock().map_err(|e| anyhow::anyhow!("{e:?}"))? += 1;
                    Ok(1)
                })
            }
            Workload::Pthread => {
                let at = the_lock_block(seg, block);
                // SAFETY: the parent initialised the mutex in the block before starting us,
                // and `seg` keeps it mapped while this function runs.
                let m = unsafe { PthreadRobust::attach(at) };
                let count = counter(at);
                control::ready_then_wait(block)?;
                control::run_until_stopped(block, || {
                    m.lock();
                    count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                    m.unlock();
                    Ok(1)
                })
            }
            Workload::Ticket => {
                let at = the_lock_block(seg, block);
                let [next, serving] = ticket_words(at);
                let count = counter(at);
                control::ready_then_wait(block)?;
                control::run_until_stopped(block, || {
                    let mine = next.fetch_add(1, Ordering::Relaxed);
                    let mut spins = 0u32;
                    while serving.load(Ordering::Acquire) != mine {
                        spins += 1;
                        if spins < 128 {
                            std::hint::spin_loop();
                        } else {
                            std::thread::yield_now();
                        }
                    }
                    count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                    serving.store(mine + 1, Ordering::Release);
                    Ok(1)
                })
            }
            Workload::SegAlloc => {
                control::ready_then_wait(block)?;
                control::run_until_stopped(block, || {
                    let off = seg.alloc(64, 16)?;
                    seg.free(black_box(off))?;
                    Ok(1)
                })
            }
            Workload::Alloc => {
                let heap = seg.heap()?;
                control::ready_then_wait(block)?;
                control::run_until_stopped(block, || {
                    let off = heap.alloc(64, 16)?;
                    heap.free(black_box(off))?;
                    Ok(1)
                })
            }
            Workload::Malloc => {
                control::ready_then_wait(block)?;
                control::run_until_stopped(block, || {
                    drop(black_box(Box::new([0u8; 64])));
                    Ok(1)
                })
            }
            Workload::Map => {
                let map = seg.open_map::<u64, u64>(OBJECT_NAME)?;
                let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (u64::from(role) << 32 | 1);
                control::ready_then_wait(block)?;
                control::run_until_stopped(block, || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let key = rng % keys;
                    if (rng >> 40) % 100 < MAP_WRITE_PERCENT {
                        map.upsert(key, 1, |v| *v += 1)?;
                    } else {
                        black_box(map.get(&key)?);
                    }
                    Ok(1)
                })
            }
            Workload::Queue => {
                let q = seg.open_queue::<u64>(OBJECT_NAME)?;
                if role < workers / 2 {
                    let tx = q.sender()?;
                    control::ready_then_wait(block)?;
                    control::run_until_stopped(block, || {
                        match tx.send_timeout(&u64::from(role), QUEUE_POLL) {
                            Ok(()) | Err(CollectionError::Timeout) => Ok(0),
                            // The consumers leave as soon as the stop is raised.
                            Err(_) if control::stopped(block) => Ok(0),
                            Err(e) => Err(e.into()),
                        }
                    })
                } else {
                    let rx = q.receiver()?;
                    control::ready_then_wait(block)?;
                    control::run_until_stopped(block, || match rx.recv_timeout(QUEUE_POLL) {
                        Ok(v) => {
                            black_box(v);
                            Ok(1)
                        }
                        Err(CollectionError::Timeout) => Ok(0),
                        Err(_) if control::stopped(block) => Ok(0),
                        Err(e) => Err(e.into()),
                    })
                }
            }
            Workload::Channel => anyhow::bail!("the channel reference runs as threads"),
        }
        .with_context(|| format!("{} worker {role}", self.name()))
    }
}

/// The `channel` reference: `workers / 2` producer and consumer threads on a crossbeam
/// bounded channel for `secs`; returns messages received per second.
pub fn channel_reference(workers: u32, secs: f64) -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(QUEUE_CAPACITY as usize);
    let block = control::new_block();
    let received = AtomicU64::new(0);
    let elapsed = std::thread::scope(|s| {
        for p in 0..workers / 2 {
            let (tx, block) = (tx.clone(), &block);
            s.spawn(move || {
                let _ = control::run_until_stopped(block, || {
                    let _ = tx.send_timeout(u64::from(p), QUEUE_POLL);
                    Ok(0)
                });
            });
        }
        for _ in 0..workers / 2 {
            let (rx, block, received) = (rx.clone(), &block, &received);
            s.spawn(move || {
                let n = control::run_until_stopped(block, || {
                    Ok(u64::from(black_box(rx.recv_timeout(QUEUE_POLL)).is_ok()))
                });
                received.fetch_add(n.unwrap_or(0), Ordering::Relaxed);
            });
        }
        let start = std::time::Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        block[control::STOP].store(1, Ordering::Relaxed);
        start.elapsed()
    });
    received.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
}

/// Allocates the 64-byte, 64-aligned block a reference lock lives in and names it in the
/// control block for the workers; returns its address here.
fn lock_block(seg: &Segment, block: &Block) -> anyhow::Result<*mut u8> {
    let off = seg.alloc(64, 64)?;
    block[control::OBJECT].store(off, Ordering::Release);
    Ok(seg.base().as_ptr().wrapping_add(off as usize))
}

/// The address of the lock block the parent named in the control block.
fn the_lock_block(seg: &Segment, block: &Block) -> *mut u8 {
    let off = block[control::OBJECT].load(Ordering::Acquire);
    seg.base().as_ptr().wrapping_add(off as usize)
}

/// The counter a reference lock protects: word 6 of its block, on the lock's cache line as
/// `Mutex<u64>`'s value is (a `pthread_mutex_t` takes bytes 0..40).
fn counter<'a>(at: *mut u8) -> &'a AtomicU64 {
    // SAFETY: `at` is a 64-byte, 64-aligned heap block of a segment the caller keeps mapped
    // while it uses the word; bytes 48..56 are only ever touched as this atomic.
    unsafe { &*at.add(48).cast::<AtomicU64>() }
}

/// The ticket lock's two words (next ticket, ticket served): words 0 and 1 of its block.
fn ticket_words<'a>(at: *mut u8) -> &'a [AtomicU64; 2] {
    // SAFETY: as for `counter`; bytes 0..16 of a ticket lock's block are only ever touched
    // as these atomics.
    unsafe { &*at.cast::<[AtomicU64; 2]>() }
}
