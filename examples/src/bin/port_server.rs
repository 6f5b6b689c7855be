//! A server and several client processes talking through a named port.
//!
//! `cargo run -p relshm-examples --bin port_server [CLIENTS]` creates a named segment, a
//! port called "greeter" in it, starts CLIENTS (default 4) `port_client` processes that
//! map the segment themselves (each at its own address), answers their requests until
//! all of them have left, and removes the segment.

use std::process::Command;
use std::time::Duration;

use relshm::collections::port::PortServer;
use relshm::collections::queue::QueueConfig;
use relshm::collections::{Arena, CollectionError};
use relshm::segment::{CreateOptions, Segment};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clients: usize = std::env::args().nth(1).map_or(Ok(4), |s| s.parse())?;
    let name = format!("/relshm-example-port-{}", std::process::id());
    let seg = Segment::create_named(&name, &CreateOptions::new(8 << 20))?;
    let arena: Arena = Arena::new(&seg)?;
    let mut server = PortServer::create_named(&arena, "greeter", QueueConfig::with_capacity(16))?;
    println!(
        "server {}: segment {name} at {:p}",
        std::process::id(),
        seg.base()
    );

    let client_exe = std::env::current_exe()?.with_file_name("port_client");
    let mut children = (0..clients)
        .map(|i| {
            Command::new(&client_exe)
                .arg(&name)
                .arg(i.to_string())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut served = 0;
    let mut seen_any = false;
    loop {
        match server.recv(Some(Duration::from_millis(500))) {
            Ok((client, request)) => {
                seen_any = true;
                let text = String::from_utf8_lossy(&request);
                server.reply(client, format!("hello, {text}!").as_bytes())?;
                served += 1;
            }
            // Idle: stop once every client has come and gone.
            Err(CollectionError::Timeout) if seen_any && server.clients() == 0 => {
                break;
            }
            Err(CollectionError::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for c in &mut children {
        let status = c.wait()?;
        assert!(status.success(), "a client failed: {status}");
    }
    println!("server: answered {served} requests from {clients} clients");
    drop(server);
    drop(seg);
    Segment::remove_named(&name)?;
    Ok(())
}
