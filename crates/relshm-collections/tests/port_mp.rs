//! Ports between real processes: one server, many clients, each mapping the segment at
//! its own address.

mod queue_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use queue_support::arena;
use queue_support::segment;
use relshm_collections::CollectionError;
use relshm_collections::port::{PortClient, PortServer};
use relshm_collections::queue::QueueConfig;
use relshm_segment::heap::Heap;
use relshm_segment::{Placement, Segment};
use relshm_testkit::{Exit, Scratch, fork_child};

const LIMIT: Duration = Duration::from_secs(120);

/// The port `name` in `seg` (queues of 4 slots), and `heap`'s used bytes once it exists.
fn port(seg: &Segment, heap: &Heap, name: &str) -> (PortServer, u64) {
    let server =
        PortServer::create_named(&arena(seg), name, QueueConfig::with_capacity(4)).unwrap();
    (server, heap.stats().unwrap().used_bytes)
}

/// Asserts that the heap is back to `in_use` bytes: every connection was freed.
fn assert_freed(heap: &Heap, in_use: u64) {
    assert_eq!(
        heap.stats().unwrap().used_bytes,
        in_use,
        "connections leaked"
    );
}

/// Request `i` of client `c`: `len` bytes (at least 16) starting with both numbers.
fn request(c: u64, i: u64, len: usize) -> Vec<u8> {
    let mut req = vec![0u8; len];
    req[..8].copy_from_slice(&c.to_le_bytes());
    req[8..16].copy_from_slice(&i.to_le_bytes());
    req
}

fn reply_to(req: &[u8]) -> Vec<u8> {
    let mut r: Vec<u8> = req.iter().rev().map(|b| b.wrapping_add(1)).collect();
    r.extend_from_slice(b"!");
    r
}

#[test]
fn eight_clients_times_a_thousand_requests_all_answered_to_the_right_client() {
    const CLIENTS: u64 = 8;
    const REQUESTS: u64 = 1000;
    let seg = segment(32 << 20);
    let heap = seg.heap().unwrap();
    let (mut server, in_use) = port(&seg, &heap, "calc");
    let scratch = Scratch::new();
    let kids: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (seg, scratch) = (&seg, &scratch);
            fork_child(move || {
                let mine = seg.reopen(Placement::Anywhere).unwrap();
                assert_ne!(mine.base(), seg.base());
                let client = PortClient::connect(&arena(&mine), "calc").unwrap();
                for i in 0..REQUESTS {
                    // Every fifth request is larger than a slot: it goes through the heap.
                    let req = request(c, i, if i % 5 == 0 { 1000 } else { 16 });
                    let reply = client.request(&req, Some(LIMIT)).unwrap();
                    assert_eq!(&*reply, reply_to(&req).as_slice(), "client {c} request {i}");
                    scratch.slot(c as usize).fetch_add(1, Ordering::AcqRel);
                }
                0
            })
        })
        .collect();
    let mut served = 0u64;
    let mut per_client = std::collections::HashMap::new();
    while served < CLIENTS * REQUESTS {
        let (id, req) = server.recv(Some(LIMIT)).unwrap();
        let c = u64::from_le_bytes(req[..8].try_into().unwrap());
        // A connection belongs to one client process.
        assert_eq!(*per_client.entry(id).or_insert(c), c);
        server.reply(id, &reply_to(&req)).unwrap();
        served += 1;
    }
    for k in kids {
        assert_eq!(k.wait_timeout(LIMIT), Exit::Code(0));
    }
    assert_eq!(per_client.len() as u64, CLIENTS);
    for c in 0..CLIENTS as usize {
        assert_eq!(scratch.slot(c).load(Ordering::Acquire), REQUESTS);
    }
    // Every client left: the server notices and drops their connections.
    assert!(matches!(
        server.recv(Some(Duration::from_millis(200))),
        Err(CollectionError::Timeout)
    ));
    assert_eq!(server.clients(), 0);
    // ... and frees their queues (and every large message went back to the heap).
    assert_freed(&heap, in_use);
}

#[test]
fn a_killed_client_is_dropped_and_the_others_are_served() {
    let seg = segment(8 << 20);
    let heap = seg.heap().unwrap();
    let (mut server, in_use) = port(&seg, &heap, "svc");
    let scratch = Scratch::new();
    let victim = fork_child(|| {
        let mine = seg.reopen(Placement::Anywhere).unwrap();
        let client = PortClient::connect(&arena(&mine), "svc").unwrap();
        client.send(b"hello", None).unwrap();
        scratch.slot(0).store(1, Ordering::Release);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let (id, m) = server.recv(Some(LIMIT)).unwrap();
    assert_eq!(&*m, b"hello");
    assert_eq!(server.clients(), 1);
    assert_eq!(victim.kill_and_wait(), Exit::Signal(libc::SIGKILL));
    let survivor = fork_child(|| {
        let mine = seg.reopen(Placement::Anywhere).unwrap();
        let client = PortClient::connect(&arena(&mine), "svc").unwrap();
        let r = client.request(b"still there?", Some(LIMIT)).unwrap();
        assert_eq!(&*r, reply_to(b"still there?").as_slice());
        0
    });
    let (id2, m) = server.recv(Some(LIMIT)).unwrap();
    assert_ne!(id, id2);
    server.reply(id2, &reply_to(&m)).unwrap();
    assert!(survivor.wait_timeout(LIMIT).success());
    // Both are gone now: the killed one is found dead by the server's idle check.
    let _ = server.recv(Some(Duration::from_millis(300)));
    assert_eq!(server.clients(), 0);
    assert!(matches!(
        server.reply(id, b"x"),
        Err(CollectionError::NoSuchClient(_))
    ));
    // The killed client's queues were freed with its connection, like the other's.
    assert_freed(&heap, in_use);
}

#[test]
fn clients_connecting_and_leaving_in_a_loop_never_see_another_ones_teardown() {
    // Both sides of a connection try to free its queues as they leave; the last one does.
    // With clients coming and going, a queue freed by one side is soon reused for a new
    // client's queue: a side that touched its connection after the other freed it would
    // close or corrupt a stranger's queue (seen as `Disconnected` or a wrong reply).
    const CLIENTS: u64 = 4;
    const ROUNDS: u64 = 150;
    let seg = segment(16 << 20);
    let heap = seg.heap().unwrap();
    let (mut server, in_use) = port(&seg, &heap, "churn");
    let kids: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let seg = &seg;
            fork_child(move || {
                let mine = seg.reopen(Placement::Anywhere).unwrap();
                let arena = arena(&mine);
                for i in 0..ROUNDS {
                    let client = PortClient::connect(&arena, "churn").unwrap();
                    let req = request(c, i, 16);
                    let reply = client.request(&req, Some(LIMIT)).unwrap();
                    assert_eq!(&*reply, reply_to(&req).as_slice(), "client {c} round {i}");
                }
                0
            })
        })
        .collect();
    let mut served = 0;
    while served < CLIENTS * ROUNDS {
        let (id, req) = server.recv(Some(LIMIT)).unwrap();
        // The client may be gone already if it was killed; here none is: every reply lands.
        server.reply(id, &reply_to(&req)).unwrap();
        served += 1;
    }
    for k in kids {
        assert_eq!(k.wait_timeout(LIMIT), Exit::Code(0));
    }
    let _ = server.recv(Some(Duration::from_millis(200)));
    assert_eq!(server.clients(), 0);
    assert_freed(&heap, in_use);
}

#[test]
fn a_client_whose_server_was_killed_frees_the_connection() {
    let seg = segment(8 << 20);
    let heap = seg.heap().unwrap();
    let scratch = Scratch::new();
    let server = fork_child(|| {
        let mine = seg.reopen(Placement::Anywhere).unwrap();
        let (mut server, _) = port(&mine, &mine.heap().unwrap(), "doomed");
        scratch.slot(0).store(1, Ordering::Release);
        let (id, m) = server.recv(Some(LIMIT)).unwrap();
        server.reply(id, &reply_to(&m)).unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    scratch.wait_for(0, 1, LIMIT);
    // The port (its record and connection queue) stays; the connection must not.
    let in_use = heap.stats().unwrap().used_bytes;
    let client = PortClient::connect(&arena(&seg), "doomed").unwrap();
    assert_eq!(
        &*client.request(b"hi", Some(LIMIT)).unwrap(),
        reply_to(b"hi").as_slice()
    );
    assert_eq!(server.kill_and_wait(), Exit::Signal(libc::SIGKILL));
    assert!(matches!(
        client.request(b"anyone?", Some(LIMIT)),
        Err(CollectionError::Disconnected { .. })
    ));
    drop(client);
    assert_freed(&heap, in_use);
}
