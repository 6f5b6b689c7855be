//! Word counting by several processes into one shared hash map.
//!
//! `cargo run -p relshm-examples --bin map_wordcount [WORKERS]` creates a named segment
//! with a `Map<ByteKey<24>, u64>` and starts WORKERS (default 3) copies of itself; each maps
//! the segment at its own address and counts the words of its share of the text with
//! `upsert` (insert-or-update in one atomic step, under one of the map's lock stripes).
//! The coordinator checks the counts against a local count, prints the most frequent
//! words, verifies the map and removes the segment.

use std::collections::HashMap;
use std::process::Command;

use relshm::collections::arena::Arena;
use relshm::collections::map::{ByteKey, Map};
use relshm::ptr::Offset;
use relshm::segment::{CreateOptions, OpenOptions, Segment};

const TEXT: &str = "\
processes share pointer rich data through shared memory segments that each process maps \
at a different address so a raw pointer written by one process means nothing to another \
the classic answers are copy time translation reference time surrogates pointer swizzling \
and a fixed address for every process relshm implements all of them behind one collection \
api so that they can be compared on the same work every offset read from a segment is \
checked before it becomes a reference and a process that dies holding a lock does not \
deadlock the others the next locker learns that the owner died and repairs the structure";

type Word = ByteKey<24>;

fn words() -> impl Iterator<Item = &'static str> {
    TEXT.split_whitespace()
}

fn worker(name: &str, id: usize, of: usize) -> Result<(), Box<dyn std::error::Error>> {
    let seg = Segment::open_named(name, &OpenOptions::new())?;
    let arena = Arena::<Offset>::new(&seg)?;
    let counts = Map::<Word, u64, Offset>::open_named(&arena, "counts")?;
    let mut n = 0;
    // Every worker counts the whole text 20 times over its share of the words.
    for _ in 0..20 {
        for w in words().skip(id).step_by(of) {
            counts.upsert(Word::new(w.as_bytes())?, 0, |c| *c += 1)?;
            n += 1;
        }
    }
    println!(
        "worker {id} (pid {}): segment at {:p}, counted {n} words",
        std::process::id(),
        seg.base()
    );
    Ok(())
}

struct Remove(String);
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = Segment::remove_named(&self.0);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return worker(&args[2], args[3].parse()?, args[4].parse()?);
    }
    let workers: usize = args.get(1).map_or(Ok(3), |s| s.parse())?;
    let name = format!("/relshm-example-map-{}", std::process::id());
    let seg = Segment::create_named(&name, &CreateOptions::new(8 << 20))?;
    let _remove = Remove(name.clone());
    let arena = Arena::<Offset>::new(&seg)?;
    let counts = Map::<Word, u64, Offset>::create_named(&arena, "counts")?;
    println!("coordinator: segment {name} at {:p}", seg.base());

    let exe = std::env::current_exe()?;
    let children = (0..workers)
        .map(|i| {
            Command::new(&exe)
                .args(["worker", &name, &i.to_string(), &workers.to_string()])
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for mut c in children {
        if !c.wait()?.success() {
            return Err("a worker failed".into());
        }
    }

    let mut want: HashMap<&str, u64> = HashMap::new();
    for w in words() {
        *want.entry(w).or_default() += 20;
    }
    let distinct = counts.verify()?;
    assert_eq!(distinct, want.len() as u64);
    let read = counts.read()?; // many lookups under one set of lock acquisitions
    for (w, n) in &want {
        assert_eq!(
            read.get(&Word::new(w.as_bytes())?)?,
            Some(*n),
            "count of {w:?}"
        );
    }
    drop(read);
    let mut top = counts.entries()?;
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_bytes().cmp(b.0.as_bytes())));
    let top: Vec<String> = top
        .iter()
        .take(5)
        .map(|(w, n)| format!("{}={n}", String::from_utf8_lossy(w.as_bytes())))
        .collect();
    println!(
        "coordinator: {distinct} distinct words, all counts exact; top: {}",
        top.join(" ")
    );
    Ok(())
}
