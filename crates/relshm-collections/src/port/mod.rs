//! Ports (mailboxes) over queues.
