//! The guest's allocator: a bump arena in front of the system allocator.
//!
//! An instance lives for one session and its memory is reset when the
//! session ends, so most of a short session's allocations never need to be
//! reused. Allocating them from a bump pointer avoids wasi-libc's `malloc`
//! and `free` (dlmalloc), which took 24% of the plugin's own samples in a
//! proxy-judge session (profiled in a running sensor). Freeing the most
//! recent block (a temporary, a growing `String`) gives it back; any other
//! free of an arena block is a no-op, so a session wastes at most the
//! arena's size. Past the arena every allocation goes to the system
//! allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

/// Bytes served by bump allocation before the system allocator takes over.
/// Large enough that a typical session never reaches the system allocator:
/// past the arena, `dlmalloc` grows linear memory, and in the host every
/// session that grew its memory costs two `mprotect` calls: the grow, and
/// the slot's reset for the next session, which takes the access away again
/// (a cross-CPU TLB shootdown in a multi-threaded sensor). With 16 KiB, an
/// SMTP session of `smtp-source` (one 5 KB message, 9 recipients)
/// overflowed it: 2.4 `mprotect` per message, 0.5 with 256 KiB, and ~30 µs
/// less sensor CPU per message (`docs/performance.md`). Only the pages a
/// session touches cost memory (the arena is zero-initialised `.bss`, not a
/// data segment), and a session wastes at most this much on frees that do
/// not come back.
const ARENA_BYTES: usize = 256 << 10;

#[repr(C, align(16))]
struct Bytes([u8; ARENA_BYTES]);

/// The arena: its bytes and the offset of the first free one.
pub struct Arena {
    bytes: UnsafeCell<Bytes>,
    next: UnsafeCell<usize>,
}

// SAFETY: a wasm32 guest has one thread; nothing else can reach the cells.
unsafe impl Sync for Arena {}

impl Arena {
    pub const fn new() -> Arena {
        Arena {
            bytes: UnsafeCell::new(Bytes([0; ARENA_BYTES])),
            next: UnsafeCell::new(0),
        }
    }

    fn base(&self) -> usize {
        self.bytes.get() as usize
    }

    fn contains(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= self.base() && p < self.base() + ARENA_BYTES
    }
}

impl Default for Arena {
    fn default() -> Arena {
        Arena::new()
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY (all methods): single-threaded, and no reference to `next`
        // outlives the call.
        let next = unsafe { &mut *self.next.get() };
        let base = self.base();
        let start = (base + *next + layout.align() - 1) & !(layout.align() - 1);
        match start.checked_add(layout.size()) {
            Some(end) if end <= base + ARENA_BYTES => {
                *next = end - base;
                start as *mut u8
            }
            _ => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.contains(ptr) {
            return unsafe { System.dealloc(ptr, layout) };
        }
        let next = unsafe { &mut *self.next.get() };
        // Only the most recent block can be given back.
        if ptr as usize + layout.size() == self.base() + *next {
            *next = ptr as usize - self.base();
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.contains(ptr) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let next = unsafe { &mut *self.next.get() };
        let p = ptr as usize;
        let last = p + layout.size() == self.base() + *next;
        // The most recent block grows or shrinks in place while it fits.
        if last && p + new_size <= self.base() + ARENA_BYTES {
            *next = p + new_size - self.base();
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller guarantees a valid layout for `new_size`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
