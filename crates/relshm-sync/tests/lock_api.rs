//! The lock_api implementations, in one process.
#![cfg(not(loom))]

use relshm_sync::{RawMutex, RawRwLock};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

type Mutex<T> = lock_api::Mutex<RawMutex, T>;
type RwLock<T> = lock_api::RwLock<RawRwLock, T>;

#[test]
fn lock_api_mutex_excludes() {
    let m = Arc::new(Mutex::new(0u64));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    let mut g = m.lock();
                    let v = *g;
                    *g = std::hint::black_box(v) + 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*m.lock(), 40_000);
    assert!(m.try_lock().is_some());
}

#[test]
fn lock_api_rwlock_readers_share_writers_exclude() {
    let l = Arc::new(RwLock::new((0u64, 0u64)));
    let inside = Arc::new(AtomicU32::new(0));
    let r1 = l.read();
    let r2 = l.read();
    assert!(l.try_write().is_none());
    drop((r1, r2));
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let (l, inside) = (l.clone(), inside.clone());
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    if i % 2 == 0 {
                        let mut g = l.write();
                        assert_eq!(inside.fetch_add(1, Ordering::AcqRel), 0);
                        g.0 += 1;
                        g.1 += 1;
                        inside.fetch_sub(1, Ordering::AcqRel);
                    } else {
                        let g = l.read();
                        assert_eq!(g.0, g.1);
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*l.read(), (4000, 4000));
}

/// A thread that ends holding the lock is an owner death to the kernel too; lock_api
/// cannot return it, so it panics and leaves the lock marked for a robust locker.
#[test]
fn lock_api_panics_on_owner_death_and_keeps_the_mark() {
    let m = Arc::new(Mutex::new(5u64));
    let m2 = m.clone();
    std::thread::spawn(move || std::mem::forget(m2.lock()))
        .join()
        .unwrap();
    assert!(m.try_lock().is_none());
    let m3 = m.clone();
    let r = std::thread::spawn(move || {
        let _g = m3.lock();
    })
    .join();
    let msg = r.unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(msg.contains("owner died"), "{msg}");
    // SAFETY: the lock is a relshm RawMutex; the robust API sees the mark.
    let raw = unsafe { m.raw() };
    assert_eq!(raw.lock(), Ok(relshm_sync::Acquired::OwnerDied));
    // SAFETY: this thread holds the raw lock.
    unsafe {
        raw.make_consistent();
        raw.unlock();
    }
    assert_eq!(*m.lock(), 5);
}
