//! Shared helpers for relshm's criterion benches.

pub use relshm_testkit::{Mapping, Shm};

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

pub mod reads;
pub mod scale;
