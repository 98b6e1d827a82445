//! ACL decision cost, in the shape of Kafka's AuthorizerBenchmark (jmh-benchmarks/.../acl/AuthorizerBenchmark):
//! R topic resources with B bindings each (LITERAL and PREFIXED, principals User:test-0..B, hosts * and one
//! address), plus a LITERAL "*" binding; then the median cost of one decision for a principal that has
//! bindings, for one that has none, of `authorize_by_resource_type`, and of authorizing DESCRIBE on every
//! topic of an all-topics Metadata request; the time to build the index; and the heap allocations made while
//! deciding (there must be none).
//!
//!   cargo run --release --example acl_bench [-- RESOURCES BINDINGS_PER_RESOURCE]   (default 10000 10)
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kgate::policy::acl::{AclBinding, AclIndex, Operation, PatternType, Permission, Requester, ResourceType};

/// Counts allocations, so the benchmark can show that a decision makes none.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter has no other effect.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn bindings(resources: usize, per_resource: usize) -> Vec<AclBinding> {
    let mut out = Vec::with_capacity(resources * per_resource + 1);
    for r in 0..resources {
        for b in 0..per_resource {
            out.push(AclBinding {
                resource_type: ResourceType::Topic,
                // One resource in four is a prefix, as in Kafka's benchmark mix of LITERAL and PREFIXED.
                pattern_type: if r % 4 == 3 {
                    PatternType::Prefixed
                } else {
                    PatternType::Literal
                },
                resource_name: format!("topic-{r}"),
                principal: format!("User:test-{b}"),
                host: if b % 2 == 0 { "*".into() } else { "127.0.0.1".into() },
                operation: if b % 3 == 0 { Operation::Write } else { Operation::Read },
                permission: if b == per_resource - 1 {
                    Permission::Deny
                } else {
                    Permission::Allow
                },
            });
        }
    }
    out.push(AclBinding {
        resource_type: ResourceType::Topic,
        pattern_type: PatternType::Literal,
        resource_name: "*".into(),
        principal: "User:*".into(),
        host: "*".into(),
        operation: Operation::Describe,
        permission: Permission::Allow,
    });
    out
}

/// The median of `rounds` timings of `per_round` calls, per call.
fn median_per_call(rounds: usize, per_round: usize, mut f: impl FnMut(usize)) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|round| {
            let start = Instant::now();
            for i in 0..per_round {
                f(round * per_round + i);
            }
            start.elapsed() / per_round as u32
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("RESOURCES BINDINGS_PER_RESOURCE"));
    let resources = args.next().unwrap_or(10_000);
    let per_resource = args.next().unwrap_or(10);
    let all = bindings(resources, per_resource);
    let count = all.len();
    let start = Instant::now();
    let index = AclIndex::new(all, ["User:admin".to_string()], false);
    let build = start.elapsed();
    let names: Vec<String> = (0..resources).map(|r| format!("topic-{r}")).collect();
    let known = Requester {
        principal: "User:test-1",
        host: "127.0.0.1",
    };
    let unknown = Requester {
        principal: "User:nobody",
        host: "10.1.2.3",
    };

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..100_000 {
        black_box(index.authorize(known, Operation::Read, ResourceType::Topic, &names[i % resources]));
        black_box(index.authorize(unknown, Operation::Describe, ResourceType::Topic, &names[i % resources]));
    }
    let decision_allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let with_bindings = median_per_call(31, 20_000, |i| {
        black_box(index.authorize(known, Operation::Read, ResourceType::Topic, &names[i % resources]));
    });
    let without_bindings = median_per_call(31, 20_000, |i| {
        black_box(index.authorize(unknown, Operation::Read, ResourceType::Topic, &names[i % resources]));
    });
    let by_type = median_per_call(11, 20, |_| {
        black_box(index.authorize_by_resource_type(known, Operation::Write, ResourceType::Topic));
    });
    let metadata = median_per_call(11, 1, |_| {
        let visible = names
            .iter()
            .filter(|n| {
                index
                    .authorize(known, Operation::Describe, ResourceType::Topic, n)
                    .is_allowed()
            })
            .count();
        black_box(visible);
    });
    println!(
        "{count} bindings ({resources} resources x {per_resource}): index built in {:.0} ms\n\
         one decision, principal with bindings:   {:>8.0} ns (median)\n\
         one decision, principal without any:     {:>8.0} ns (median)\n\
         heap allocations in 200,000 decisions:   {decision_allocations}\n\
         authorize_by_resource_type:              {:>8.1} us\n\
         all-topics Metadata ({resources} topics):      {:>8.2} ms",
        build.as_secs_f64() * 1e3,
        with_bindings.as_nanos() as f64,
        without_bindings.as_nanos() as f64,
        by_type.as_nanos() as f64 / 1e3,
        metadata.as_secs_f64() * 1e3,
    );
}
