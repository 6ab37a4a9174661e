//! The guest's global allocator: freed blocks are kept in per-size-class
//! lists and handed out again, in front of the system allocator (wasi-libc's
//! dlmalloc). A call allocates and frees the same few sizes over and over
//! (its input, its encoded output, field texts, bodies), and dlmalloc's
//! malloc/free were the largest single cost inside the plugins.
//!
//! Sizes up to [`MAX_BLOCK`] with an alignment of at most 8 are rounded up
//! to a power of two (the class); larger or more aligned requests go to the
//! system allocator unchanged. Each class keeps at most [`CLASS_BYTES`] of
//! free blocks; beyond that a freed block goes back to the system.
//!
//! Only registered for single-threaded wasm32 guests (see `lib.rs`): the
//! lists are plain memory without locks.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;
use std::alloc::System;

/// Smallest class: 16 bytes (a class must hold the list's next pointer).
const MIN_SHIFT: u32 = 4;
/// Largest class: 64 KiB.
const MAX_SHIFT: u32 = 16;
pub(crate) const MAX_BLOCK: usize = 1 << MAX_SHIFT;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Bytes of free blocks kept per class (at least two blocks).
pub(crate) const CLASS_BYTES: usize = 128 * 1024;
/// Alignment of every class block.
const ALIGN: usize = 8;

#[derive(Clone, Copy)]
struct FreeList {
    /// First free block; each holds the address of the next in its first bytes.
    head: *mut u8,
    len: usize,
}

pub struct CachingAlloc {
    lists: UnsafeCell<[FreeList; CLASSES]>,
}

// SAFETY: only used as the global allocator of guests without threads
// (`lib.rs` registers it only without the `atomics` target feature); tests
// use an instance per thread.
unsafe impl Sync for CachingAlloc {}

impl CachingAlloc {
    pub const fn new() -> Self {
        CachingAlloc {
            lists: UnsafeCell::new(
                [FreeList {
                    head: ptr::null_mut(),
                    len: 0,
                }; CLASSES],
            ),
        }
    }

    /// Free blocks kept for `layout`'s class (0 when it has none).
    #[cfg(test)]
    fn cached(&self, layout: Layout) -> usize {
        // SAFETY: single-threaded use (see `Sync`); no reference outlives this.
        class(layout).map_or(0, |c| unsafe { (*self.lists.get())[c].len })
    }

    /// # Safety
    /// No other reference to the lists may be live (single-threaded, and no
    /// list operation calls back into the allocator).
    #[allow(clippy::mut_from_ref)]
    unsafe fn list(&self, c: usize) -> &mut FreeList {
        // SAFETY: the caller guarantees exclusive access.
        unsafe { &mut (*self.lists.get())[c] }
    }
}

impl Default for CachingAlloc {
    fn default() -> Self {
        Self::new()
    }
}

/// The class of `layout`, or `None` when the system allocator serves it.
fn class(layout: Layout) -> Option<usize> {
    if layout.align() > ALIGN || layout.size() > MAX_BLOCK {
        return None;
    }
    let size = layout.size().max(1 << MIN_SHIFT);
    // ceil(log2(size)): the smallest power of two that holds it.
    let shift = usize::BITS - (size - 1).leading_zeros();
    Some((shift - MIN_SHIFT) as usize)
}

fn class_layout(c: usize) -> Layout {
    // A power of two up to MAX_BLOCK with alignment 8 is always valid.
    Layout::from_size_align(1 << (c as u32 + MIN_SHIFT), ALIGN).expect("class layout")
}

fn class_cap(c: usize) -> usize {
    (CLASS_BYTES >> (c as u32 + MIN_SHIFT)).max(2)
}

unsafe impl GlobalAlloc for CachingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            // SAFETY: forwarded contract.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: exclusive (see `list`); `head` is a block of this class we
        // own, whose first bytes hold the next pointer (8-aligned).
        unsafe {
            let list = self.list(c);
            if list.len == 0 {
                return System.alloc(class_layout(c));
            }
            let block = list.head;
            list.head = block.cast::<*mut u8>().read();
            list.len -= 1;
            block
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            // SAFETY: it came from `System.alloc(layout)`.
            return unsafe { System.dealloc(block, layout) };
        };
        // SAFETY: `block` is a class-`c` block (allocated with `class_layout`,
        // at least 16 bytes, 8-aligned) the caller gives up.
        unsafe {
            let list = self.list(c);
            if list.len >= class_cap(c) {
                return System.dealloc(block, class_layout(c));
            }
            block.cast::<*mut u8>().write(list.head);
            list.head = block;
            list.len += 1;
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to
        // `layout.align()`, does not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new_layout)) {
            // The block is the whole class: it already fits.
            (Some(a), Some(b)) if a == b => block,
            // SAFETY: both sides are the system's.
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: a fresh block of the new layout, the old one's
                // bytes copied (the smaller size), then the old one freed.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 1).unwrap()
    }

    #[test]
    fn classes_are_powers_of_two_up_to_the_largest_block() {
        assert_eq!(class(layout(1)), Some(0));
        assert_eq!(class(layout(16)), Some(0));
        assert_eq!(class(layout(17)), Some(1));
        assert_eq!(class(layout(1500)), Some(7)); // 2 KiB
        assert_eq!(class(layout(MAX_BLOCK)), Some(CLASSES - 1));
        assert_eq!(class(layout(MAX_BLOCK + 1)), None);
        assert_eq!(class(Layout::from_size_align(64, 16).unwrap()), None);
        assert_eq!(class(Layout::from_size_align(64, 8).unwrap()), Some(2));
    }

    #[test]
    fn a_freed_block_is_handed_out_again() {
        let a = CachingAlloc::new();
        unsafe {
            let p = a.alloc(layout(100));
            p.write_bytes(7, 100);
            a.dealloc(p, layout(100));
            assert_eq!(a.cached(layout(100)), 1);
            // Any size of the same class (65..=128) gets it back.
            let q = a.alloc(layout(70));
            assert_eq!(q, p);
            assert_eq!(a.cached(layout(100)), 0);
            a.dealloc(q, layout(70));
        }
    }

    #[test]
    fn each_class_keeps_a_bounded_number_of_blocks() {
        let a = CachingAlloc::new();
        let l = layout(MAX_BLOCK);
        let cap = class_cap(class(l).unwrap());
        unsafe {
            let blocks: Vec<*mut u8> = (0..cap + 3).map(|_| a.alloc(l)).collect();
            for &b in &blocks {
                a.dealloc(b, l);
            }
            assert_eq!(a.cached(l), cap);
            let small = layout(16);
            let blocks: Vec<*mut u8> = (0..CLASS_BYTES / 16 + 5).map(|_| a.alloc(small)).collect();
            for &b in &blocks {
                a.dealloc(b, small);
            }
            assert_eq!(a.cached(small), CLASS_BYTES / 16);
        }
    }

    #[test]
    fn realloc_keeps_the_bytes_within_and_across_classes() {
        let a = CachingAlloc::new();
        unsafe {
            let p = a.alloc(layout(20));
            for i in 0..20 {
                p.add(i).write(i as u8);
            }
            // 20 -> 32: same class, same block.
            let q = a.realloc(p, layout(20), 32);
            assert_eq!(q, p);
            // 32 -> 5000: another class.
            let r = a.realloc(q, layout(32), 5000);
            assert_ne!(r, q);
            assert_eq!(a.cached(layout(32)), 1);
            // 5000 -> beyond the classes: the system's.
            let s = a.realloc(r, layout(5000), MAX_BLOCK * 2);
            for i in 0..20 {
                assert_eq!(s.add(i).read(), i as u8);
            }
            // And back down into a class.
            let t = a.realloc(s, layout(MAX_BLOCK * 2), 24);
            for i in 0..20 {
                assert_eq!(t.add(i).read(), i as u8);
            }
            a.dealloc(t, layout(24));
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_when_reused() {
        let a = CachingAlloc::new();
        unsafe {
            let p = a.alloc(layout(64));
            p.write_bytes(0xff, 64);
            a.dealloc(p, layout(64));
            let q = a.alloc_zeroed(layout(64));
            assert_eq!(q, p);
            assert!((0..64).all(|i| q.add(i).read() == 0));
            a.dealloc(q, layout(64));
        }
    }
}
