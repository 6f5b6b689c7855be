//! Ports between real processes: one server, many clients, each mapping the segment at
//! its own address.

mod queue_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use queue_support::segment;
use relshm_collections::port::{PortClient, PortError, PortServer};
use relshm_collections::queue::{QueueConfig, QueueError};
use relshm_segment::Placement;
use relshm_testkit::{Exit, Scratch, fork_child};

const LIMIT: Duration = Duration::from_secs(120);

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
    let mut server = PortServer::create(
        &heap,
        &seg.directory().unwrap(),
        "calc",
        QueueConfig::with_capacity(4),
    )
    .unwrap();
    let in_use = heap.stats().unwrap().used_bytes;
    let scratch = Scratch::new();
    let kids: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (seg, scratch) = (&seg, &scratch);
            fork_child(move || {
                let mine = seg.reopen(Placement::Anywhere).unwrap();
                assert_ne!(mine.base(), seg.base());
                let client =
                    PortClient::connect(&mine.heap().unwrap(), &mine.directory().unwrap(), "calc")
                        .unwrap();
                for i in 0..REQUESTS {
                    // Every fifth request is larger than a slot: it goes through the heap.
                    let len = if i % 5 == 0 { 1000 } else { 16 };
                    let mut req = vec![0u8; len];
                    req[..8].copy_from_slice(&c.to_le_bytes());
                    req[8..16].copy_from_slice(&i.to_le_bytes());
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
        Err(PortError::Queue(QueueError::Timeout))
    ));
    assert_eq!(server.clients(), 0);
    // ... and frees their queues (and every large message went back to the heap).
    assert_eq!(
        heap.stats().unwrap().used_bytes,
        in_use,
        "connections leaked"
    );
}

#[test]
fn a_killed_client_is_dropped_and_the_others_are_served() {
    let seg = segment(8 << 20);
    let heap = seg.heap().unwrap();
    let mut server = PortServer::create(
        &heap,
        &seg.directory().unwrap(),
        "svc",
        QueueConfig::with_capacity(4),
    )
    .unwrap();
    let in_use = heap.stats().unwrap().used_bytes;
    let scratch = Scratch::new();
    let victim = fork_child(|| {
        let mine = seg.reopen(Placement::Anywhere).unwrap();
        let client =
            PortClient::connect(&mine.heap().unwrap(), &mine.directory().unwrap(), "svc").unwrap();
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
        let client =
            PortClient::connect(&mine.heap().unwrap(), &mine.directory().unwrap(), "svc").unwrap();
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
        Err(PortError::NoSuchClient(_))
    ));
    // The killed client's queues were freed with its connection, like the other's.
    assert_eq!(
        heap.stats().unwrap().used_bytes,
        in_use,
        "connections leaked"
    );
}
