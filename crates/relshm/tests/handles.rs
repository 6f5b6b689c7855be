//! Handles own what they need: they are `'static`, move into threads, and keep the
//! mapping alive after everything else let go of it.

use relshm::Error;
use relshm::prelude::*;

fn owned_and_shareable<T: Send + Sync + 'static>() {}

#[test]
fn handles_are_static_send_and_sync() {
    owned_and_shareable::<Segment>();
    owned_and_shareable::<Arena>();
    owned_and_shareable::<Arena<Offset>>();
    owned_and_shareable::<Map<u64, u64>>();
    owned_and_shareable::<Map<[u8; 24], [u8; 40], Offset>>();
    owned_and_shareable::<List<u64>>();
    owned_and_shareable::<LinkedQueue<u64>>();
    owned_and_shareable::<Queue<u64>>();
    owned_and_shareable::<Sender<u64>>();
    owned_and_shareable::<Receiver<u64>>();
    owned_and_shareable::<Message>();
    owned_and_shareable::<Stream>();
}

fn owned_and_movable<T: Send + 'static>() {}

#[test]
fn single_owner_endpoints_are_static_and_send() {
    // One writer and one reader per stream, one server per port: moved, not shared.
    owned_and_movable::<StreamWriter>();
    owned_and_movable::<StreamReader>();
    owned_and_movable::<PortServer>();
    owned_and_movable::<PortClient>();
}

#[test]
fn the_last_handle_keeps_the_segment_mapped() -> Result<(), Box<dyn std::error::Error>> {
    let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
    let counts = seg.create_map::<u64, u64>("counts")?;
    let jobs = seg.create_list::<u64>("jobs")?;
    drop(seg); // the handles keep the mapping
    let worker = std::thread::spawn(move || -> Result<(List<u64>, u64), Error> {
        for k in 0..1000 {
            counts.insert(k, k * k)?;
            jobs.push_back(k)?;
        }
        Ok((jobs, counts.get(&999)?.unwrap_or(0)))
    });
    let (jobs, last) = worker.join().expect("the worker panicked")?;
    assert_eq!(last, 999 * 999);
    assert_eq!(jobs.len()?, 1000);
    assert_eq!(jobs.pop_front()?, Some(0));
    Ok(())
}
