//! Shared helpers for relshm's criterion benches.

use rustix::fd::OwnedFd;
use rustix::mm::{MapFlags, ProtFlags};

/// A memfd-backed shared region; every [`SharedRegion::map`] maps it again (at a new
/// address), as a second process would.
pub struct SharedRegion {
    fd: OwnedFd,
    len: usize,
}

impl SharedRegion {
    /// A zero-filled region of `len` bytes.
    pub fn new(len: usize) -> Self {
        let fd = rustix::fs::memfd_create("relshm-bench", rustix::fs::MemfdFlags::CLOEXEC)
            .expect("memfd_create");
        rustix::fs::ftruncate(&fd, len as u64).expect("ftruncate");
        Self { fd, len }
    }

    /// A new shared mapping of the region.
    pub fn map(&self) -> Mapping {
        // SAFETY: a fresh shared mapping of our own memfd; the kernel picks the address.
        let ptr = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                self.len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &self.fd,
                0,
            )
        }
        .expect("mmap");
        Mapping {
            ptr: ptr.cast(),
            len: self.len,
        }
    }
}

/// One mapping of a [`SharedRegion`]; unmapped on drop.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: plain shared memory; `at` only hands out references to Sync types.
unsafe impl Sync for Mapping {}
// SAFETY: as above.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Start address of this mapping.
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// The `T` at `off`; all-zero bytes must be a valid `T`.
    pub fn at<T: Sync>(&self, off: usize) -> &T {
        assert!(off + core::mem::size_of::<T>() <= self.len);
        assert_eq!((self.ptr as usize + off) % core::mem::align_of::<T>(), 0);
        // SAFETY: in bounds, aligned, zero-initialised shared memory that is only accessed
        // through T's own process-shared API.
        unsafe { &*(self.ptr.add(off) as *const T) }
    }

    /// Raw pointer to offset `off` (for C objects initialised in place).
    pub fn ptr(&self, off: usize) -> *mut u8 {
        assert!(off < self.len);
        // SAFETY: in bounds of the mapping.
        unsafe { self.ptr.add(off) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from mmap; borrows from `at` end before drop.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}

/// A process-shared, robust `pthread_mutex_t` living in shared memory (the peer the
/// relshm mutex is compared with).
pub struct PthreadRobust {
    m: *mut libc::pthread_mutex_t,
}

// SAFETY: a PTHREAD_PROCESS_SHARED mutex may be used from any thread of any process.
unsafe impl Sync for PthreadRobust {}
// SAFETY: as above.
unsafe impl Send for PthreadRobust {}

impl PthreadRobust {
    /// Initialises a robust, process-shared mutex at `p`.
    ///
    /// # Safety
    /// `p` points to at least `size_of::<pthread_mutex_t>()` writable, suitably aligned
    /// bytes that stay mapped (in every process using it) while it is used.
    pub unsafe fn init(p: *mut u8) -> Self {
        let m = p.cast::<libc::pthread_mutex_t>();
        // SAFETY: all-zero bytes are a valid uninitialised attr; the calls initialise it
        // and the mutex at the caller-provided memory.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = core::mem::zeroed();
            assert_eq!(libc::pthread_mutexattr_init(&mut attr), 0);
            assert_eq!(
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                0
            );
            assert_eq!(
                libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
                0
            );
            assert_eq!(libc::pthread_mutex_init(m, &attr), 0);
            libc::pthread_mutexattr_destroy(&mut attr);
        }
        Self { m }
    }

    /// An already initialised mutex at `p` (e.g. through another mapping).
    ///
    /// # Safety
    /// As for [`init`](Self::init), and the mutex there was initialised.
    pub unsafe fn attach(p: *mut u8) -> Self {
        Self { m: p.cast() }
    }

    /// Locks (owner death is not expected in the benches).
    #[inline]
    pub fn lock(&self) {
        // SAFETY: initialised mutex in live shared memory.
        let r = unsafe { libc::pthread_mutex_lock(self.m) };
        debug_assert_eq!(r, 0);
    }

    /// Unlocks.
    #[inline]
    pub fn unlock(&self) {
        // SAFETY: this thread holds it.
        let r = unsafe { libc::pthread_mutex_unlock(self.m) };
        debug_assert_eq!(r, 0);
    }
}
