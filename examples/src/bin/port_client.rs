//! One client of `port_server`: maps the server's named segment (at its own address),
//! connects to the "greeter" port and sends a few requests, each answered in one call.
//!
//! Usage: `port_client SEGMENT_NAME CLIENT_NUMBER` (started by `port_server`).

use std::time::Duration;

use relshm::collections::Arena;
use relshm::collections::port::PortClient;
use relshm::segment::{OpenOptions, Segment};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args
        .next()
        .ok_or("usage: port_client SEGMENT_NAME CLIENT_NUMBER")?;
    let me: usize = args.next().ok_or("missing CLIENT_NUMBER")?.parse()?;
    let seg = Segment::open_named(&name, &OpenOptions::new())?;
    let arena: Arena = Arena::new(&seg)?;
    let client = PortClient::connect(&arena, "greeter")?;
    for k in 0..3 {
        let reply = client.request(
            format!("client {me} (pid {}) #{k}", std::process::id()).as_bytes(),
            Some(Duration::from_secs(10)),
        )?;
        println!(
            "client {me} at {:p}: {}",
            seg.base(),
            String::from_utf8_lossy(&reply)
        );
    }
    Ok(())
}
