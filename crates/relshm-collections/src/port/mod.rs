//! Ports (mailboxes), after the seeds' LPC connection and communication ports: a server
//! publishes a named port in the segment's directory; a client connects through it and
//! gets a private pair of queues (requests to the server, replies back); one server
//! serves many clients; [`PortClient::request`] sends and waits for the reply in one call.
//!
//! A connecting client allocates one block for the connection (a record, then its two
//! queues), owned by the client process until the server takes it over, registers its
//! own endpoints, and posts the block's offset and owner on the port's *connection
//! queue*. The server takes connections and
//! requests in [`PortServer::recv`], sleeping on the port's doorbell futex (clients ring it
//! after each post, through the same waiter-counted protocol as the queues, so nothing is
//! signalled while the server is busy). A client that exits or is killed disconnects: its
//! request queue reports `Disconnected` and the server drops the connection.
//!
//! # Layout
//!
//! The directory entry (a [`PortRecord`], 64 bytes):
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `magic` | `"RSHMPORT"` |
//! | 8 | `connect_queue` | offset of the connection queue (messages: [`ConnectRequest`]) |
//! | 16 | `doorbell`, `doorbell_waiters` | futex word bumped on every post; sleeping servers |
//! | 24 | `slot_size`, `capacity` | geometry of the per-client queues |
//! | 32 | `server_pid` | the serving process (0 = unknown) |
//! | 40 | `server_start` | its start time (`/proc/<pid>/stat` field 22) |
//! | 48..64 | reserved | zero |
//!
//! A connection's block (its 64-byte [`ConnectionRecord`], then two queues of
//! `2368 + capacity × stride` bytes each) is freed by whichever side leaves last (see
//! `port::connection`): a client dropped or killed is noticed by the server, which drops
//! the connection; a client that outlives its server frees it on drop. A client killed
//! before the server accepted its connection (before or after posting it) leaves a block
//! that [`PortServer::reclaim`] frees, with the requests queued in it; [`PortServer::recv`]
//! runs that after each idle sleep.
//!
//! ```
//! use relshm_collections::Arena;
//! use relshm_collections::port::{PortClient, PortServer};
//! use relshm_collections::queue::QueueConfig;
//! use relshm_segment::{CreateOptions, Segment};
//! use std::time::Duration;
//!
//! let seg = Segment::create_unnamed(&CreateOptions::new(4 << 20))?;
//! let arena: Arena = Arena::new(&seg)?;
//! let mut server = PortServer::create_named(&arena, "echo", QueueConfig::with_capacity(8))?;
//! let client = std::thread::scope(|s| {
//!     let c = s.spawn(|| {
//!         let client = PortClient::connect(&arena, "echo").unwrap();
//!         let reply = client.request(b"ping", None).unwrap();
//!         assert_eq!(&*reply, b"PING");
//!     });
//!     let (id, req) = server.recv(Some(Duration::from_secs(10))).unwrap();
//!     server.reply(id, &req.to_ascii_uppercase()).unwrap();
//!     c.join()
//! });
//! assert!(client.is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod connection;

pub use connection::{CONNECTION_MAGIC, ConnectionRecord};

use core::cell::Cell;
use core::ptr::NonNull;
use std::collections::HashMap;
use std::time::Duration;

use relshm_ptr::Repr;
use relshm_segment::Segment;
use relshm_segment::directory::SegmentObject;
use relshm_segment::heap::kill_point;
use relshm_segment::procstat;
use relshm_sync::facade::{AtomicU32, AtomicU64, Ordering::*};

use crate::arena::Arena;
use crate::error::CollectionError;
use crate::queue::wait::{Event, SPIN_ROUNDS};
use crate::queue::{Message, QueueConfig, RawQueue, Receiver, Sender};
use connection::Leave;

/// `"RSHMPORT"` in little-endian.
pub const PORT_MAGIC: u64 = u64::from_le_bytes(*b"RSHMPORT");

/// A port's directory entry; see the module docs for the layout.
#[repr(C)]
pub struct PortRecord {
    magic: AtomicU64,
    connect_queue: AtomicU64,
    doorbell: AtomicU32,
    doorbell_waiters: AtomicU32,
    slot_size: AtomicU32,
    capacity: AtomicU32,
    server_pid: AtomicU64,
    server_start: AtomicU64,
    reserved: [AtomicU64; 2],
}

const _: () = assert!(core::mem::size_of::<PortRecord>() == 64);

// SAFETY: #[repr(C)], fixed layout, atomics only (every bit pattern valid, shared mutation
// through atomics), no pointers, no drop glue.
unsafe impl SegmentObject for PortRecord {
    const TYPE_NAME: &'static str = "relshm_collections::port::PortRecord";
    const TYPE_VERSION: u32 = 3;
}

/// What a client posts on the connection queue: its connection record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct ConnectRequest {
    /// Offset of the [`ConnectionRecord`] (which names the two queues).
    pub connection: u64,
    /// The client's process id (for diagnostics).
    pub pid: u64,
    /// The connection block's owner word as the client allocated it: the server takes the
    /// block over only while it still reads this (see `port::connection`).
    pub owner: u64,
}

/// Identifies a connected client at its server.
pub type ClientId = u64;

fn client_config(rec: &PortRecord) -> QueueConfig {
    QueueConfig {
        capacity: rec.capacity.load(Relaxed),
        slot_size: rec.slot_size.load(Relaxed),
        large_messages: true,
    }
}

fn doorbell(rec: &PortRecord) -> Event<'_> {
    Event {
        word: &rec.doorbell,
        waiters: &rec.doorbell_waiters,
    }
}

struct Connection {
    requests: Receiver<u8>,
    replies: Sender<u8>,
    // Declared after the endpoints, so they are unregistered before it runs.
    _leave: Leave,
}

/// The server side of a named port.
pub struct PortServer {
    seg: Segment,
    record: u64,
    rec: NonNull<PortRecord>,
    incoming: Receiver<ConnectRequest>,
    clients: HashMap<ClientId, Connection>,
    order: Vec<ClientId>,
    next_id: ClientId,
    cursor: usize,
}

// SAFETY: the record pointer names shared memory used only through atomics; the other
// fields are Send.
unsafe impl Send for PortServer {}

impl core::fmt::Debug for PortServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PortServer")
            .field("record", &self.record)
            .field("clients", &self.order)
            .finish()
    }
}

impl PortServer {
    /// Creates the port `name` in the directory of `arena`'s segment (any strategy: a
    /// port links by segment offsets); clients get per-client queues laid out as
    /// `config`, allocated (growing the segment when it may) as they connect.
    pub fn create_named<R: Repr>(
        arena: &Arena<R>,
        name: &str,
        config: QueueConfig,
    ) -> Result<PortServer, CollectionError> {
        let seg = arena.shared_segment()?;
        let dir = seg.directory()?;
        let connect = RawQueue::create(seg, QueueConfig::with_capacity(64))?;
        let incoming = connect.receiver::<ConnectRequest>()?;
        let rec = dir.construct(
            name,
            PortRecord {
                magic: AtomicU64::new(0),
                connect_queue: AtomicU64::new(connect.offset()),
                doorbell: AtomicU32::new(0),
                doorbell_waiters: AtomicU32::new(0),
                slot_size: AtomicU32::new(config.slot_size),
                capacity: AtomicU32::new(config.capacity),
                server_pid: AtomicU64::new(u64::from(std::process::id())),
                server_start: AtomicU64::new(procstat::own_start_time()),
                reserved: Default::default(),
            },
        );
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                drop(incoming);
                let _ = connect.destroy();
                return Err(relshm_segment::SegmentError::from(e).into());
            }
        };
        rec.magic.store(PORT_MAGIC, Release);
        Ok(PortServer {
            seg: seg.clone(),
            record: rec.offset(),
            rec: rec.as_ptr(),
            incoming,
            clients: HashMap::new(),
            order: Vec::new(),
            next_id: 1,
            cursor: 0,
        })
    }

    /// Frees the connections of clients that died before this server accepted them
    /// (whether or not they had posted them, with the requests they had queued), and the
    /// heap blocks dead processes held; returns how many connections were freed. [`recv`]
    /// runs it after each idle sleep; safe to call at any time.
    ///
    /// [`recv`]: Self::recv
    pub fn reclaim(&self) -> Result<u64, CollectionError> {
        // SAFETY: as in `recv`.
        let config = client_config(unsafe { self.rec.as_ref() });
        Leave::reclaim(&self.seg, self.record, config)
    }

    /// Connected clients.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Waits (at most `timeout`, `None` = forever) for the next request from any client,
    /// accepting new connections on the way; clients are served round-robin.
    pub fn recv(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<(ClientId, Message), CollectionError> {
        // SAFETY: resolved in the mapping at creation; the server's segment clone keeps it
        // mapped; atomics only. Not borrowed from `self`, so `poll` may take `&mut self`.
        let bell = doorbell(unsafe { self.rec.as_ref() });
        let sleeping = AtomicU32::new(0);
        let reap = Cell::new(false);
        bell.block_on(
            &sleeping,
            timeout,
            SPIN_ROUNDS,
            || self.poll(reap.replace(false)),
            || reap.set(true),
        )
    }

    /// One pass: new connections, then each client once.
    /// `reap`: also look for clients that died (after an idle sleep).
    fn poll(&mut self, reap: bool) -> Result<Option<(ClientId, Message)>, CollectionError> {
        if reap {
            for conn in self.clients.values() {
                let _ = conn.requests.queue().reap_dead();
            }
            let _ = self.reclaim();
        }
        while let Ok(req) = self.incoming.try_recv() {
            if let Ok(Some(conn)) = self.accept(req) {
                let id = self.next_id;
                self.next_id += 1;
                self.clients.insert(id, conn);
                self.order.push(id);
            }
        }
        let n = self.order.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let id = self.order[i];
            let conn = &self.clients[&id];
            match conn.requests.try_recv_bytes() {
                Ok(m) => {
                    self.cursor = (i + 1) % n;
                    return Ok(Some((id, m)));
                }
                Err(CollectionError::Empty) => {}
                Err(_) => {
                    // Disconnected (or broken): forget the client; retry next round.
                    self.clients.remove(&id);
                    self.order.remove(i);
                    self.cursor = 0;
                    return Ok(None);
                }
            }
        }
        Ok(None)
    }

    /// The connection `req` posted, taken over; `None` if it is gone (its client died and
    /// a reclaim freed it).
    fn accept(&self, req: ConnectRequest) -> Result<Option<Connection>, CollectionError> {
        // SAFETY: as in `recv`.
        let config = client_config(unsafe { self.rec.as_ref() });
        let Some(leave) = Leave::take(&self.seg, self.record, config, req.connection, req.owner)?
        else {
            return Ok(None);
        };
        Ok(Some(Connection {
            requests: leave.requests().receiver::<u8>()?,
            replies: leave.replies().sender::<u8>()?,
            _leave: leave,
        }))
    }

    /// Sends `reply` to `client` (waits while its reply queue is full, at most 10 s: a
    /// client that does not read its replies is not waited for forever).
    pub fn reply(&self, client: ClientId, reply: &[u8]) -> Result<(), CollectionError> {
        let conn = self
            .clients
            .get(&client)
            .ok_or(CollectionError::NoSuchClient(client))?;
        conn.replies
            .send_bytes(reply, Some(Duration::from_secs(10)))?;
        Ok(())
    }
}

/// A client's connection to a named port.
pub struct PortClient {
    requests: Sender<u8>,
    replies: Receiver<u8>,
    record: u64,
    rec: NonNull<PortRecord>,
    // Declared after the endpoints, so they are unregistered before it runs.
    _leave: Leave,
}

// SAFETY: as for PortServer.
unsafe impl Send for PortClient {}

impl core::fmt::Debug for PortClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PortClient")
            .field("record", &self.record)
            .finish()
    }
}

impl PortClient {
    /// Connects to the port `name` in the directory of `arena`'s segment: allocates this
    /// client's pair of queues and their connection record there (growing the segment
    /// when it may) and posts the record to the server.
    pub fn connect<R: Repr>(arena: &Arena<R>, name: &str) -> Result<PortClient, CollectionError> {
        let seg = arena.shared_segment()?;
        let dir = seg.directory()?;
        let named = dir
            .find::<PortRecord>(name)
            .map_err(relshm_segment::SegmentError::from)?;
        let rec = named.get();
        let bad = |why: &str| CollectionError::BadRecord {
            name: name.to_owned(),
            why: why.to_owned(),
        };
        if rec.magic.load(Acquire) != PORT_MAGIC {
            return Err(bad(
                "wrong magic (the server has not finished creating it?)",
            ));
        }
        let connect = RawQueue::attach(seg, rec.connect_queue.load(Relaxed))?;
        let server = (rec.server_pid.load(Relaxed), rec.server_start.load(Relaxed));
        // Before the endpoints: on an early return they are dropped first, then this frees
        // the connection (the server never heard of it).
        let mut leave = Leave::create(seg, named.offset(), client_config(rec), server)?;
        let requests = leave.requests().sender::<u8>()?;
        let replies = leave.replies().receiver::<u8>()?;
        connect.sender::<ConnectRequest>()?.send_timeout(
            &ConnectRequest {
                connection: leave.record(),
                pid: u64::from(std::process::id()),
                owner: leave.owner(),
            },
            Duration::from_secs(10),
        )?;
        leave.share();
        kill_point();
        doorbell(rec).notify(false);
        Ok(PortClient {
            requests,
            replies,
            record: named.offset(),
            rec: named.as_ptr(),
            _leave: leave,
        })
    }

    fn record(&self) -> &PortRecord {
        // SAFETY: resolved in the mapping by the directory at connect; the connection's
        // segment clone (in `_leave`) keeps it mapped while the client lives; atomics only.
        unsafe { self.rec.as_ref() }
    }

    /// Sends `request` and waits (at most `timeout`) for the server's reply.
    pub fn request(
        &self,
        request: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Message, CollectionError> {
        self.send(request, timeout)?;
        self.replies.recv_bytes(timeout)
    }

    /// Sends a message to the server without waiting for a reply.
    pub fn send(&self, msg: &[u8], timeout: Option<Duration>) -> Result<(), CollectionError> {
        self.requests.send_bytes(msg, timeout)?;
        doorbell(self.record()).notify(false);
        Ok(())
    }

    /// Waits for the next message from the server.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Message, CollectionError> {
        self.replies.recv_bytes(timeout)
    }
}
