//! No leak at any kill point of a port client connecting or a server accepting: a
//! connection's record and queues (and the large requests queued before the accept) are
//! owned by a record that the surviving side finds, whatever instant the other dies.
//!
//! Each round runs one side in a forked child (mapping the segment at another address)
//! that `_exit`s before its n-th fault point (every allocator store, plus the kill
//! points of the port and the queues), for every n until the script completes; the
//! survivor then reclaims and the heap's used bytes are compared with the start. Who
//! reclaims: after a client's death, the server ([`PortServer::reclaim`], or its `recv`
//! once idle); after a server's death, the client when it drops its connection.
#![cfg(debug_assertions)]

mod queue_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use queue_support::arena;
use queue_support::{LARGE, LIMIT, kill_point_config, segment, sweep_kill_points, used};
use relshm_collections::CollectionError;
use relshm_collections::port::{PortClient, PortServer};
use relshm_segment::Placement;
use relshm_segment::heap::exit_before_store;
use relshm_testkit::{Scratch, fork_child};

/// Sweeps a client that dies at every fault point of its connect and of a large and a
/// small request queued before the server accepts; `survive` is the server's part after
/// each death. Returns how many points were swept.
fn connect_sweep(name: &str, survive: impl Fn(&mut PortServer)) -> u64 {
    sweep_kill_points(name, |n| {
        let seg = segment(1 << 20);
        let heap = seg.heap().unwrap();
        let mut server =
            PortServer::create_named(&arena(&seg), "svc", kill_point_config()).unwrap();
        let before = used(&seg);
        let exit = fork_child(|| {
            let mine = seg.reopen(Placement::Anywhere).unwrap();
            assert_ne!(mine.base(), seg.base());
            let arena = arena(&mine);
            exit_before_store(n);
            let client = PortClient::connect(&arena, "svc").unwrap();
            // Queued before the server accepts: freed with the connection.
            client.send(&[1; LARGE], Some(LIMIT)).unwrap();
            client.send(b"small", Some(LIMIT)).unwrap();
            exit_before_store(0);
            0
        })
        .wait_timeout(LIMIT);
        survive(&mut server);
        assert_eq!(server.clients(), 0);
        heap.verify().unwrap();
        (exit, used(&seg) as i64 - before as i64)
    })
}

#[test]
fn a_client_dying_at_any_point_of_connect_leaks_nothing_after_the_servers_reclaim() {
    let points = connect_sweep("client connect, PortServer::reclaim", |server| {
        // Frees what the dead client left, posted or not; a connection it posted is then
        // refused when the server takes it.
        server.reclaim().unwrap();
        assert!(
            matches!(
                server.recv(Some(Duration::from_millis(20))),
                Err(CollectionError::Timeout)
            ),
            "a reclaimed connection was served"
        );
    });
    assert!(points > 10, "only {points} kill points");
}

#[test]
fn a_client_dying_at_any_point_of_connect_leaks_nothing_once_the_server_idles_in_recv() {
    let points = connect_sweep("client connect, PortServer::recv", |server| {
        // recv accepts what was posted (serving the requests sent before the death, then
        // dropping the disconnected client) and reclaims the rest after an idle sleep.
        loop {
            match server.recv(Some(Duration::from_millis(200))) {
                Ok(_) => {}
                Err(CollectionError::Timeout) => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
    });
    assert!(points > 10, "only {points} kill points");
}

#[test]
fn a_server_dying_at_any_point_of_accept_leaks_nothing() {
    let points = sweep_kill_points("server accept", |n| {
        let seg = segment(1 << 20);
        let heap = seg.heap().unwrap();
        let scratch = Scratch::new();
        let child = fork_child(|| {
            let mine = seg.reopen(Placement::Anywhere).unwrap();
            assert_ne!(mine.base(), seg.base());
            let mut server =
                PortServer::create_named(&arena(&mine), "svc", kill_point_config()).unwrap();
            scratch.slot(0).store(1, Ordering::Release);
            scratch.wait_for(1, 1, LIMIT);
            exit_before_store(n);
            // Accepts the connection and takes its (large) request, then replies.
            let (id, req) = server.recv(Some(LIMIT)).unwrap();
            assert_eq!(req.len(), LARGE);
            server.reply(id, &[2; LARGE]).unwrap();
            exit_before_store(0);
            0
        });
        scratch.wait_for(0, 1, LIMIT);
        // The port (its record and connection queue) stays; the connection must not.
        let before = used(&seg);
        let client = PortClient::connect(&arena(&seg), "svc").unwrap();
        client.send(&[1; LARGE], Some(LIMIT)).unwrap();
        scratch.slot(1).store(1, Ordering::Release);
        let exit = child.wait_timeout(LIMIT);
        // The survivor: the client, leaving after its server died, frees the connection
        // and what the dead server held (a request it had taken).
        drop(client);
        heap.verify().unwrap();
        (exit, used(&seg) as i64 - before as i64)
    });
    assert!(points > 10, "only {points} kill points");
}
