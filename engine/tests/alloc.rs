//! Applying events allocates nothing after warm-up: a counting global allocator around the
//! measured part of a seeded exchange-core-like workload (moves, new orders, cancels, IOCs that
//! trade), with GTD expiries, snapshots excluded.
//!
//! This binary holds a single test so that no other test thread allocates while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use ordo_engine::workload::{Workload, WorkloadSpec, generate};
use ordo_engine::{Engine, Output};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_allocation_per_event_after_warm_up() {
    for instruments in [1, 10] {
        let spec = WorkloadSpec {
            seed: 7,
            instruments,
            commands: 60_000,
            resting: 1_000,
            accounts: 1_000,
        };
        let workload = generate(&spec);
        let mut engine = Engine::new(workload.config).unwrap();
        let mut out: Vec<Output> = Vec::with_capacity(1 << 14);
        let capacity = out.capacity();
        let events: Vec<_> = workload.setup.iter().chain(&workload.commands).collect();
        let warm_up = workload.setup.len() + 10_000;
        let mut fills = 0u64;
        let mut measured_allocations = 0;
        for (i, cmd) in events.iter().enumerate() {
            if i == warm_up {
                measured_allocations = ALLOCATIONS.load(Ordering::Relaxed);
            }
            out.clear();
            engine
                .apply(i as u64 + 1, Workload::timestamp(i), cmd, &mut out)
                .unwrap();
            fills += out.iter().filter(|o| matches!(o, Output::Fill { .. })).count() as u64;
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - measured_allocations;
        assert_eq!(out.capacity(), capacity, "the sink never grew");
        assert!(fills > 1_000, "the workload trades ({fills} fills)");
        assert_eq!(
            allocations,
            0,
            "{instruments} instrument(s): {allocations} allocations in {} events",
            events.len() - warm_up
        );
    }
}
