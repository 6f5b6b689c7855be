//! Shared memory that every process maps on its own: one memfd, and a fresh mapping (at a
//! new address) per [`Shm::map`], as a second process would map it.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A path by which another process, exec'ed or not, opens the file behind `fd` of this
/// process: `/proc/<pid>/fd/<fd>` (it works for memfds, which have no name).
pub fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd())
}

/// Opens (read-write, close-on-exec) a path made by [`fd_path`] in another process.
/// Panics if it cannot: the test set-up is broken.
pub fn open_fd_path(path: &str) -> OwnedFd {
    let c = std::ffi::CString::new(path).expect("a path without NUL bytes");
    // SAFETY: a NUL-terminated path and valid flags.
    let raw = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    assert!(
        raw >= 0,
        "opening {path}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// A zero-filled memfd of a fixed length.
pub struct Shm {
    fd: OwnedFd,
    len: usize,
}

impl Shm {
    /// A zero-filled memfd of `len` bytes (close-on-exec; inherited by forked children).
    pub fn new(len: usize) -> Self {
        // SAFETY: the name is a NUL-terminated literal; the flags are valid.
        let raw = unsafe { libc::memfd_create(c"relshm-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(
            raw >= 0,
            "memfd_create: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: memfd_create returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ftruncate on our own descriptor.
        let r = unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) };
        assert_eq!(r, 0, "ftruncate: {}", std::io::Error::last_os_error());
        Self { fd, len }
    }

    /// Opens the memfd another process published with [`Shm::path`] (for exec'ed
    /// children, which inherit no descriptor).
    pub fn open(path: &str) -> Self {
        let fd = open_fd_path(path);
        // SAFETY: all-zero bytes are a valid `stat`; fstat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: our own descriptor and a valid out-pointer.
        let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
        assert_eq!(r, 0, "fstat {path}: {}", std::io::Error::last_os_error());
        Self {
            fd,
            len: st.st_size as usize,
        }
    }

    /// A path by which another process opens this memfd with [`Shm::open`] while this
    /// `Shm` lives.
    pub fn path(&self) -> String {
        use std::os::fd::AsFd;
        fd_path(self.fd.as_fd())
    }

    /// The memfd's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the memfd is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A new shared read-write mapping of the whole memfd, at an address the kernel picks
    /// (never one that is still mapped, so two live mappings always differ).
    pub fn map(&self) -> Mapping {
        // SAFETY: a new shared mapping of our own descriptor with no address hint.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.fd.as_raw_fd(),
                0,
            )
        };
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        Mapping {
            ptr: p.cast(),
            len: self.len,
        }
    }
}

/// One mapping of a [`Shm`]; unmapped on drop.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: plain shared memory; `at` only hands out references to Sync types.
unsafe impl Sync for Mapping {}
// SAFETY: as above.
unsafe impl Send for Mapping {}

impl Mapping {
    /// The address this mapping starts at.
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// The `T` at byte offset `off`. All-zero bytes must be a valid `T` (true for every
    /// relshm lock and for integers and atomics), and `T` must be used only through its
    /// own process-shared API.
    pub fn at<T: Sync>(&self, off: usize) -> &T {
        assert!(
            off + size_of::<T>() <= self.len,
            "offset {off} out of range"
        );
        assert_eq!(
            (self.addr() + off) % align_of::<T>(),
            0,
            "offset {off} misaligned"
        );
        // SAFETY: in bounds and aligned (checked above); the memory is shared, zero-filled
        // or written only through T's own interior-mutable, process-shared API.
        unsafe { &*(self.ptr.add(off) as *const T) }
    }

    /// Raw pointer to byte offset `off` (for C objects initialised in place).
    pub fn ptr(&self, off: usize) -> *mut u8 {
        assert!(off < self.len, "offset {off} out of range");
        // SAFETY: in bounds of the mapping.
        unsafe { self.ptr.add(off) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from mmap; references from `at` borrow self.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn two_mappings_differ_and_share_bytes() {
        let shm = Shm::new(4096);
        let (a, b) = (shm.map(), shm.map());
        assert_ne!(a.addr(), b.addr());
        a.at::<AtomicU64>(8).store(42, Ordering::Release);
        assert_eq!(b.at::<AtomicU64>(8).load(Ordering::Acquire), 42);
    }

    #[test]
    fn open_by_path_shares_bytes() {
        let shm = Shm::new(8192);
        let other = Shm::open(&shm.path());
        assert_eq!(other.len(), 8192);
        shm.map().at::<AtomicU64>(16).store(9, Ordering::Release);
        assert_eq!(other.map().at::<AtomicU64>(16).load(Ordering::Acquire), 9);
    }
}
