//! Cross-process message passing: relshm's queue against a pipe, a Unix domain socket,
//! `ipc-channel` and (with `--features bench-iceoryx2`, which needs libclang for its
//! bindgen build step) `iceoryx2` publish-subscribe, plus a bare shared-memory spin
//! ping-pong as the floor. Every measurement forks a real second process.
//!
//! - `throughput/<impl>/<bytes>`: time per message for a stream of messages of 8 B,
//!   256 B and 64 KiB from the parent to a child that consumes them.
//! - `pingpong/<impl>`: round trip of an 8-byte message and its echo; `-spin` variants
//!   poll, `-block` variants sleep in the kernel while waiting.
//!
//! Run: `cargo bench -p relshm-collections --bench queue_ipc [--features bench-iceoryx2]`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use relshm_collections::Arena;
use relshm_collections::queue::{Queue, QueueConfig};
use relshm_segment::{CreateOptions, Placement, Segment};
use relshm_testkit::{Scratch, fork_child};

const SIZES: [usize; 3] = [8, 256, 64 << 10];
const LIMIT: Duration = Duration::from_secs(120);
const POLL: u32 = u32::MAX;

/// Waits until scratch slot `i` holds at least `v`, spinning (the waits are on the
/// measured path for throughput, and short).
fn spin_until(s: &Scratch, i: usize, v: u64) {
    let deadline = Instant::now() + LIMIT;
    while s.slot(i).load(Ordering::Acquire) < v {
        std::hint::spin_loop();
        assert!(Instant::now() < deadline, "peer never reached {v}");
    }
}

/// Byte-message queues: the benches send raw bytes of every size.
type Bytes = Queue<u8>;

/// The default-strategy arena on `seg` (a queue does not care which).
fn arena(seg: &Segment) -> Arena {
    Arena::new(seg).unwrap()
}

fn relshm_pair(capacity: u32) -> (Segment, Bytes, Bytes) {
    let seg = Segment::create_unnamed(&CreateOptions::new(64 << 20)).unwrap();
    let a = Bytes::create(&arena(&seg), QueueConfig::with_capacity(capacity)).unwrap();
    let b = Bytes::create(&arena(&seg), QueueConfig::with_capacity(capacity)).unwrap();
    (seg, a, b)
}

fn relshm_throughput(size: usize, n: u64) -> Duration {
    let (seg, q, _) = relshm_pair(64);
    let s = Scratch::new();
    let off = q.offset();
    let child = fork_child(|| {
        let mine = seg.reopen(Placement::Anywhere).unwrap();
        let q = Bytes::open(&arena(&mine), off).unwrap();
        let rx = q.receiver().unwrap();
        s.slot(0).store(1, Ordering::Release);
        let mut total = 0u64;
        for _ in 0..n {
            total += rx.recv_with(Some(LIMIT), 1000, |b| b.len() as u64).unwrap();
        }
        s.slot(2).store(total, Ordering::Release);
        s.slot(1).store(n, Ordering::Release);
        0
    });
    let tx = q.sender().unwrap();
    let msg = vec![7u8; size];
    spin_until(&s, 0, 1);
    let t = Instant::now();
    for _ in 0..n {
        tx.send_bytes(&msg, Some(LIMIT)).unwrap();
    }
    spin_until(&s, 1, n);
    let d = t.elapsed();
    assert_eq!(s.slot(2).load(Ordering::Acquire), n * size as u64);
    assert!(child.wait_timeout(LIMIT).success());
    d
}

fn stream_throughput<W: Write, R: Read>(size: usize, n: u64, w: W, r: R) -> Duration {
    let s = Scratch::new();
    let mut r = Some(r);
    let child = fork_child(|| {
        let mut r = r.take().unwrap();
        s.slot(0).store(1, Ordering::Release);
        let mut buf = vec![0u8; size.max(1 << 16)];
        let mut left = n * size as u64;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let k = r.read(&mut buf[..want]).unwrap();
            assert!(k > 0);
            left -= k as u64;
        }
        s.slot(1).store(n, Ordering::Release);
        0
    });
    drop(r);
    let mut w = w;
    let msg = vec![7u8; size];
    spin_until(&s, 0, 1);
    let t = Instant::now();
    for _ in 0..n {
        w.write_all(&msg).unwrap();
    }
    spin_until(&s, 1, n);
    let d = t.elapsed();
    assert!(child.wait_timeout(LIMIT).success());
    d
}

fn pipe() -> (std::fs::File, std::fs::File) {
    let (r, w) = rustix_pipe();
    (std::fs::File::from(w), std::fs::File::from(r))
}

fn rustix_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe() just returned two fresh descriptors we now own.
    unsafe {
        use std::os::fd::FromRawFd;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

fn ipc_channel_throughput(size: usize, n: u64) -> Duration {
    let (tx, rx) = ipc_channel::ipc::bytes_channel().unwrap();
    let s = Scratch::new();
    let child = fork_child(|| {
        s.slot(0).store(1, Ordering::Release);
        let mut total = 0u64;
        for _ in 0..n {
            total += rx.recv().unwrap().len() as u64;
        }
        assert_eq!(total, n * size as u64);
        s.slot(1).store(n, Ordering::Release);
        0
    });
    let msg = vec![7u8; size];
    spin_until(&s, 0, 1);
    let t = Instant::now();
    for _ in 0..n {
        tx.send(&msg).unwrap();
    }
    spin_until(&s, 1, n);
    let d = t.elapsed();
    assert!(child.wait_timeout(LIMIT).success());
    d
}

fn relshm_pingpong(n: u64, spin: u32) -> Duration {
    let (seg, ping, pong) = relshm_pair(8);
    let s = Scratch::new();
    let (po, qo) = (ping.offset(), pong.offset());
    let child = fork_child(|| {
        let mine = seg.reopen(Placement::Anywhere).unwrap();
        let rx = Bytes::open(&arena(&mine), po).unwrap().receiver().unwrap();
        let tx = Bytes::open(&arena(&mine), qo).unwrap().sender().unwrap();
        s.slot(0).store(1, Ordering::Release);
        for _ in 0..n {
            let mut m = [0u8; 8];
            rx.recv_with(Some(LIMIT), spin, |b| m.copy_from_slice(b))
                .unwrap();
            tx.send_bytes_spin(&m, Some(LIMIT), spin).unwrap();
        }
        0
    });
    let tx = ping.sender().unwrap();
    let rx = pong.receiver().unwrap();
    spin_until(&s, 0, 1);
    let t = Instant::now();
    for i in 0..n {
        tx.send_bytes_spin(&i.to_ne_bytes(), Some(LIMIT), spin)
            .unwrap();
        let back = rx.recv_with(Some(LIMIT), spin, |b| b.len()).unwrap();
        debug_assert_eq!(back, 8);
    }
    let d = t.elapsed();
    assert!(child.wait_timeout(LIMIT).success());
    d
}

fn bare_spin_pingpong(n: u64) -> Duration {
    let s = Scratch::new();
    let child = fork_child(|| {
        s.slot(0).store(1, Ordering::Release);
        for i in 1..=n {
            while s.slot(10).load(Ordering::Acquire) != i {
                std::hint::spin_loop();
            }
            s.slot(11).store(i, Ordering::Release);
        }
        0
    });
    spin_until(&s, 0, 1);
    let t = Instant::now();
    for i in 1..=n {
        s.slot(10).store(i, Ordering::Release);
        while s.slot(11).load(Ordering::Acquire) != i {
            std::hint::spin_loop();
        }
    }
    let d = t.elapsed();
    assert!(child.wait_timeout(LIMIT).success());
    d
}

fn stream_pingpong<S: Read + Write>(n: u64, mut a: S, b: S) -> Duration {
    let s = Scratch::new();
    let mut b = Some(b);
    let child = fork_child(|| {
        let mut b = b.take().unwrap();
        s.slot(0).store(1, Ordering::Release);
        let mut m = [0u8; 8];
        for _ in 0..n {
            b.read_exact(&mut m).unwrap();
            b.write_all(&m).unwrap();
        }
        0
    });
    drop(b);
    spin_until(&s, 0, 1);
    let t = Instant::now();
    let mut m = [0u8; 8];
    for i in 0..n {
        a.write_all(&i.to_ne_bytes()).unwrap();
        a.read_exact(&mut m).unwrap();
    }
    let d = t.elapsed();
    assert!(child.wait_timeout(LIMIT).success());
    d
}

/// Two pipes as one bidirectional stream.
struct PipePair(std::fs::File, std::fs::File);

impl Read for PipePair {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.1.read(b)
    }
}

impl Write for PipePair {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn pipe_pingpong(n: u64) -> Duration {
    let (w1, r1) = pipe();
    let (w2, r2) = pipe();
    stream_pingpong(n, PipePair(w1, r2), PipePair(w2, r1))
}

fn ipc_channel_pingpong(n: u64) -> Duration {
    let (tx1, rx1) = ipc_channel::ipc::bytes_channel().unwrap();
    let (tx2, rx2) = ipc_channel::ipc::bytes_channel().unwrap();
    let s = Scratch::new();
    let child = fork_child(|| {
        s.slot(0).store(1, Ordering::Release);
        for _ in 0..n {
            let m = rx1.recv().unwrap();
            tx2.send(&m).unwrap();
        }
        0
    });
    spin_until(&s, 0, 1);
    let t = Instant::now();
    for i in 0..n {
        tx1.send(&i.to_ne_bytes()).unwrap();
        rx2.recv().unwrap();
    }
    let d = t.elapsed();
    assert!(child.wait_timeout(LIMIT).success());
    d
}

#[cfg(feature = "bench-iceoryx2")]
mod ice {
    //! iceoryx2 publish-subscribe over `[u8]` slices; the publisher blocks when the
    //! subscriber's buffer is full (no overflow), so every message is delivered.
    use super::*;
    use iceoryx2::prelude::*;
    use iceoryx2::service::port_factory::publish_subscribe::PortFactory;

    type Svc = PortFactory<ipc::Service, [u8], ()>;

    fn service(node: &Node<ipc::Service>, name: &str, max: usize) -> Svc {
        node.service_builder(&name.try_into().unwrap())
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(64)
            .history_size(0)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()
            .unwrap_or_else(|e| panic!("iceoryx2 service {name} ({max} B): {e:?}"))
    }

    fn unique(tag: &str) -> String {
        use std::sync::atomic::AtomicU64;
        static N: AtomicU64 = AtomicU64::new(0);
        format!(
            "relshm/bench/{tag}/{}/{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn send(p: &iceoryx2::port::publisher::Publisher<ipc::Service, [u8], ()>, msg: &[u8]) {
        loop {
            match p.loan_slice_uninit(msg.len()) {
                Ok(s) => {
                    s.write_from_slice(msg).send().unwrap();
                    return;
                }
                // Every sample is in flight: wait for the subscriber to release some.
                Err(_) => std::hint::spin_loop(),
            }
        }
    }

    pub fn throughput(size: usize, n: u64) -> Duration {
        let name = unique("tp");
        let s = Scratch::new();
        let child = fork_child(|| {
            let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
            let svc = service(&node, &name, size);
            let sub = svc.subscriber_builder().create().unwrap();
            s.slot(0).store(1, Ordering::Release);
            let mut got = 0u64;
            let mut bytes = 0u64;
            while got < n {
                if let Some(m) = sub.receive().unwrap() {
                    bytes += m.payload().len() as u64;
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
            assert_eq!(bytes, n * size as u64);
            s.slot(1).store(n, Ordering::Release);
            0
        });
        spin_until(&s, 0, 1);
        let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
        let svc = service(&node, &name, size);
        let p = svc
            .publisher_builder()
            .initial_max_slice_len(size)
            .unable_to_deliver_strategy(UnableToDeliverStrategy::Block)
            .create()
            .unwrap();
        // The subscriber connects to publishers it discovers: wait until it sees us.
        std::thread::sleep(Duration::from_millis(20));
        let msg = vec![7u8; size];
        let t = Instant::now();
        for _ in 0..n {
            send(&p, &msg);
        }
        spin_until(&s, 1, n);
        let d = t.elapsed();
        assert!(child.wait_timeout(LIMIT).success());
        d
    }

    pub fn pingpong(n: u64) -> Duration {
        let (a, b) = (unique("ping"), unique("pong"));
        let s = Scratch::new();
        let child = fork_child(|| {
            let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
            let sub = service(&node, &a, 8).subscriber_builder().create().unwrap();
            let p = service(&node, &b, 8)
                .publisher_builder()
                .initial_max_slice_len(8)
                .unable_to_deliver_strategy(UnableToDeliverStrategy::Block)
                .create()
                .unwrap();
            s.slot(0).store(1, Ordering::Release);
            spin_until(&s, 2, 1);
            for _ in 0..n {
                loop {
                    if let Some(m) = sub.receive().unwrap() {
                        send(&p, m.payload());
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            0
        });
        spin_until(&s, 0, 1);
        let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
        let p = service(&node, &a, 8)
            .publisher_builder()
            .initial_max_slice_len(8)
            .unable_to_deliver_strategy(UnableToDeliverStrategy::Block)
            .create()
            .unwrap();
        let sub = service(&node, &b, 8).subscriber_builder().create().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        s.slot(2).store(1, Ordering::Release);
        let t = Instant::now();
        for i in 0..n {
            send(&p, &i.to_ne_bytes());
            while sub.receive().unwrap().is_none() {
                std::hint::spin_loop();
            }
        }
        let d = t.elapsed();
        assert!(child.wait_timeout(LIMIT).success());
        d
    }
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("throughput");
    for size in SIZES {
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("relshm", size), |b| {
            b.iter_custom(|n| relshm_throughput(size, n))
        });
        g.bench_function(BenchmarkId::new("pipe", size), |b| {
            b.iter_custom(|n| {
                let (w, r) = pipe();
                stream_throughput(size, n, w, r)
            })
        });
        g.bench_function(BenchmarkId::new("unix-socket", size), |b| {
            b.iter_custom(|n| {
                let (w, r) = UnixStream::pair().unwrap();
                stream_throughput(size, n, w, r)
            })
        });
        g.bench_function(BenchmarkId::new("ipc-channel", size), |b| {
            b.iter_custom(|n| ipc_channel_throughput(size, n))
        });
        #[cfg(feature = "bench-iceoryx2")]
        g.bench_function(BenchmarkId::new("iceoryx2", size), |b| {
            b.iter_custom(|n| ice::throughput(size, n))
        });
    }
    g.finish();
}

fn pingpong(c: &mut Criterion) {
    let mut g = c.benchmark_group("pingpong");
    g.bench_function("bare-shm-spin", |b| b.iter_custom(bare_spin_pingpong));
    g.bench_function("relshm-spin", |b| {
        b.iter_custom(|n| relshm_pingpong(n, POLL))
    });
    g.bench_function("relshm-block", |b| b.iter_custom(|n| relshm_pingpong(n, 0)));
    g.bench_function("pipe-block", |b| b.iter_custom(pipe_pingpong));
    g.bench_function("unix-socket-block", |b| {
        b.iter_custom(|n| {
            let (a, b) = UnixStream::pair().unwrap();
            stream_pingpong(n, a, b)
        })
    });
    g.bench_function("ipc-channel-block", |b| b.iter_custom(ipc_channel_pingpong));
    #[cfg(feature = "bench-iceoryx2")]
    g.bench_function("iceoryx2-spin", |b| b.iter_custom(ice::pingpong));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = throughput, pingpong
}
criterion_main!(benches);
