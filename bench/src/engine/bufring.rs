//! The worker's provided-buffer ring: one pool of receive buffers shared by every
//! connection of a ring, handed to the kernel through `IORING_REGISTER_PBUF_RING`.
//!
//! Multishot receives pick a buffer only when data arrives, so an idle connection holds
//! no receive buffer at all; the worker parses straight out of the buffer and gives it
//! back at once ([`BufRing::recycle`]), publishing the new tail once per loop turn
//! ([`BufRing::publish`]).

use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

/// The buffer group id every worker ring uses (one group per ring).
pub const BGID: u16 = 0;

/// A registered ring of receive buffers.
pub struct BufRing {
    /// The ring of entries (page-aligned, mmap'd; pinned by the kernel on register).
    entries: *mut BufRingEntry,
    entries_len: usize,
    mask: u16,
    /// The buffers, `count * size` bytes.
    bufs: Box<[u8]>,
    size: usize,
    /// Our tail, published to the kernel by [`BufRing::publish`].
    tail: u16,
}

impl BufRing {
    /// Allocates `count` (a power of two up to 32768) buffers of `size` bytes and
    /// registers them with `ring`.
    pub fn new(ring: &IoUring, count: u16, size: usize) -> io::Result<BufRing> {
        assert!(count.is_power_of_two() && count <= 32768);
        assert!(size > 0 && size <= u32::MAX as usize);
        let entries_len = usize::from(count) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping; the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                entries_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut br = BufRing {
            entries: ptr.cast(),
            entries_len,
            mask: count - 1,
            bufs: vec![0u8; usize::from(count) * size].into_boxed_slice(),
            size,
            tail: 0,
        };
        // SAFETY: `entries` is a page-aligned mapping of `count` entries that lives until
        // `drop`, which happens after the ring is gone (the worker drops its ring first)
        // or after unregistering; the kernel pins it on registration.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ptr as u64, count, BGID, 0)?;
        }
        for bid in 0..count {
            br.recycle(bid);
        }
        br.publish();
        Ok(br)
    }

    /// The first `len` bytes of buffer `bid` (what a receive completion filled).
    pub fn buf(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid & self.mask) * self.size;
        &self.bufs[start..start + len.min(self.size)]
    }

    /// Hands buffer `bid` back (visible to the kernel after [`BufRing::publish`]).
    pub fn recycle(&mut self, bid: u16) {
        let bid = bid & self.mask;
        let addr = self.bufs.as_ptr() as u64 + (usize::from(bid) * self.size) as u64;
        // SAFETY: `tail & mask` indexes one of the `count` entries of the mapping. The
        // kernel only reads entries between its head and our published tail, and this
        // one is past the published tail, so nobody else touches it now.
        unsafe {
            let e = &mut *self.entries.add(usize::from(self.tail & self.mask));
            e.set_addr(addr);
            e.set_len(self.size as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes the tail: recycled buffers become available to the kernel.
    pub fn publish(&self) {
        // SAFETY: the tail field lives in the first entry of the mapping; the kernel
        // reads it with acquire semantics, so a release store orders the entry writes
        // before it.
        unsafe {
            let tail = BufRingEntry::tail(self.entries) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.size
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once. Pages the kernel still pins
        // (a ring not yet torn down) stay valid for it until it unpins them.
        unsafe {
            libc::munmap(self.entries.cast(), self.entries_len);
        }
    }
}
