//! The process's memory: one budget that every allocation of consequence follows, and the
//! allocator that reuses freed memory between inferences and gives it back when idle.
//!
//! A board may have 512 MB for everything. The [`MemoryBudget`] (by default half of the
//! memory this process can have) is split in two: a quarter for one decoded image or frame
//! (decoding refuses, from the header, anything larger, counting a JPEG decoded at reduced
//! scale at that scale; see `input`), and the rest for the models (a later stage is loaded
//! only if its estimated footprint fits beside what is resident; see `runtime::Footprint`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Bytes per decoded pixel (8-bit RGB).
pub(crate) const BYTES_PER_PIXEL: u64 = 3;

/// The share of the budget one decoded image may take: one part in four.
const IMAGE_SHARE: u64 = 4;

/// The smallest budget that still decodes a 1080p camera frame with room to spare.
const MIN_BUDGET_MB: u64 = 32;

/// The memory the process may use, in bytes: the one setting decode limits follow from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget(u64);

impl MemoryBudget {
    /// A budget of `mb` megabytes (at least 32).
    pub fn from_mb(mb: u64) -> Result<MemoryBudget> {
        if mb < MIN_BUDGET_MB {
            return Err(Error::InvalidArgument(format!(
                "--max-memory-mb must be at least {MIN_BUDGET_MB}, got {mb}"
            )));
        }
        Ok(MemoryBudget(mb.saturating_mul(1 << 20)))
    }

    /// Half of the memory this process can have: the least of the machine's memory
    /// (`MemTotal`), its address-space limit (`ulimit -v`) and its cgroup's memory limit
    /// (v2 `memory.max` or v1 `memory.limit_in_bytes`); 512 MB where none can be read.
    pub fn of_machine() -> MemoryBudget {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let cgroup_limits: Vec<String> = cgroup_limit_files(
            &read(Path::new("/proc/self/cgroup")),
            Path::new("/sys/fs/cgroup"),
        )
        .iter()
        .map(|p| read(p))
        .collect();
        let least = least_memory(
            &read(Path::new("/proc/meminfo")),
            &read(Path::new("/proc/self/limits")),
            &cgroup_limits,
        );
        match least {
            Some(bytes) => MemoryBudget((bytes / 2).max(MIN_BUDGET_MB << 20)),
            None => MemoryBudget(512 << 20),
        }
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The most pixels one decoded image or frame may have under this budget.
    pub fn max_pixels(self) -> u64 {
        self.image_bytes() / BYTES_PER_PIXEL
    }

    /// The bytes one decoded image may take: a quarter of the budget.
    pub fn image_bytes(self) -> u64 {
        self.0 / IMAGE_SHARE
    }

    /// The bytes the models may take: the budget less one image's share.
    pub fn model_bytes(self) -> u64 {
        self.0 - self.image_bytes()
    }

    /// Makes this budget the process's: every later decode, frame format and cascade built
    /// without a budget of its own follows it.
    pub fn apply(self) {
        BUDGET.store(self.0, Ordering::Relaxed);
    }

    /// The process's budget: the one [`apply`](Self::apply)'d, or else the machine's.
    pub fn current() -> MemoryBudget {
        match BUDGET.load(Ordering::Relaxed) {
            0 => {
                let budget = MemoryBudget::of_machine();
                log::info!(
                    "memory budget {} MB: half of the least of the machine's memory, ulimit -v \
                     and the cgroup limit (set with --max-memory-mb)",
                    budget.mb()
                );
                BUDGET.store(budget.0, Ordering::Relaxed);
                budget
            }
            n => MemoryBudget(n),
        }
    }

    /// Megabytes (MiB), for messages.
    pub fn mb(self) -> u64 {
        self.0 >> 20
    }
}

/// The files that may hold this process's cgroup memory limits, given /proc/self/cgroup
/// and the cgroup mount point: for its own cgroup and every ancestor (a limit set on a
/// parent, such as a systemd slice, binds too), v2's `memory.max` (at the mount point, or
/// under `unified/` on a hybrid v1/v2 system) and v1's `memory.limit_in_bytes`.
fn cgroup_limit_files(proc_cgroup: &str, root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (bases, file) = match (controllers, path) {
            (Some(""), Some(_)) => (vec![root.to_path_buf(), root.join("unified")], "memory.max"),
            (Some(c), Some(_)) if c.split(',').any(|c| c == "memory") => {
                (vec![root.join("memory")], "memory.limit_in_bytes")
            }
            _ => continue,
        };
        let Some(path) = path else { continue };
        let mut dir = PathBuf::from(path.trim_start_matches('/'));
        loop {
            for base in &bases {
                files.push(base.join(&dir).join(file));
            }
            if !dir.pop() {
                break;
            }
        }
    }
    files
}

/// The least of the memory figures a process is held to, in bytes: `MemTotal` from
/// /proc/meminfo, the soft "Max address space" from /proc/self/limits, and cgroup limits
/// (a number, or `max` for none).
fn least_memory(meminfo: &str, limits: &str, cgroup_limits: &[String]) -> Option<u64> {
    let total = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024);
    let address_space = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok());
    let cgroups = cgroup_limits
        .iter()
        .filter_map(|v| v.trim().parse::<u64>().ok());
    total.into_iter().chain(address_space).chain(cgroups).min()
}

/// The process's budget in bytes; 0 until set or first read.
static BUDGET: AtomicU64 = AtomicU64::new(0);

/// The allocator the `cascade` binary runs on (its `#[global_allocator]`): mimalloc, built
/// without transparent huge pages. The system allocators map every large block on its own
/// and unmap it when freed (musl, the board's libc, from 128 KiB; glibc as this crate set
/// it, from 1 MiB, to stop its heap fragmenting), and tract allocates each layer's output
/// afresh on every run, so every inference faulted its activations in again: 2,000 to 6,000
/// page faults per Lite0 inference, 4.2 million over a 500-image cascade eval with 7.9 s of
/// system time. mimalloc keeps freed memory for reuse and returns what has not been reused
/// within a second (its purge delay). Measured on x86_64 (AMD EPYC VM, one thread):
/// Lite0 inference 31.2-36.9 -> 26.1-26.3 ms; `eval` Lite0 -> Lite2 over the 500 shared
/// images 29.1 -> 39.3 images/s, same answers; peak RSS 137 -> 187 MB there (freed blocks
/// wait for reuse; with transparent huge pages it was higher still, hence `no_thp`). The
/// README's "The allocator" has the table and the setting that trades memory back. A
/// library user picks their own allocator; [`return_freed_memory`] serves both.
pub use mimalloc::MiMalloc as Allocator;

/// Gives freed memory back to the system now, whichever allocator holds it. A model is
/// thousands of small blocks (tract's graph, packed weights), so dropping one frees little
/// resident memory by itself: with glibc, loading Lite0 and Lite2 then dropping both left
/// 63 of 77 MB resident, and trimming brought it to 17 MB. Called when a stage is released.
pub fn return_freed_memory() {
    // SAFETY: mi_collect only walks mimalloc's own heaps and arenas; without mimalloc as the
    // global allocator it has nothing to collect.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_and_their_pixel_limits() {
        assert!(MemoryBudget::from_mb(8).is_err());
        let b = MemoryBudget::from_mb(512).unwrap();
        // 512 MiB / 4 / 3 bytes: about 44.7 megapixels, a 12 MP photo fits three times over.
        assert_eq!(b.max_pixels(), (512u64 << 20) / 12);
        // The rest is the models': 384 MiB.
        assert_eq!(b.model_bytes(), 384 << 20);
        assert_eq!(b.image_bytes() + b.model_bytes(), b.bytes());
        assert!(MemoryBudget::of_machine().bytes() >= 32 << 20);
    }

    #[test]
    fn the_least_of_machine_ulimit_and_cgroup_counts() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree: 1 kB\n";
        let unlimited = "Max cpu time              unlimited            unlimited            seconds\n\
                         Max address space         unlimited            unlimited            bytes\n";
        let limited = "Max address space         367001600            unlimited            bytes\n";
        let gb = 24_000_000 * 1024;
        assert_eq!(least_memory(meminfo, unlimited, &[]), Some(gb));
        assert_eq!(least_memory(meminfo, limited, &[]), Some(367_001_600));
        let cgroup = ["max\n".to_string(), "536870912\n".to_string()];
        assert_eq!(least_memory(meminfo, unlimited, &cgroup), Some(536_870_912));
        assert_eq!(least_memory("", "", &[]), None);
    }

    #[test]
    fn cgroup_limits_are_read_for_the_cgroup_and_its_ancestors() {
        let root = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let p = root.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        // v1: the service's own limit is 400 MB, its slice's 300 MB; v2 says "max".
        write("memory/slice/svc/memory.limit_in_bytes", "419430400\n");
        write("memory/slice/memory.limit_in_bytes", "314572800\n");
        write("memory/memory.limit_in_bytes", "9223372036854771712\n");
        write("unified/slice/svc/memory.max", "max\n");
        let proc_cgroup = "4:memory:/slice/svc\n3:cpu,cpuacct:/slice/svc\n0::/slice/svc\n";
        let files = cgroup_limit_files(proc_cgroup, root.path());
        assert!(files.contains(&root.path().join("memory/slice/memory.limit_in_bytes")));
        assert!(files.contains(&root.path().join("unified/slice/svc/memory.max")));
        let limits: Vec<String> = files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect();
        let meminfo = "MemTotal:       24000000 kB\n";
        assert_eq!(least_memory(meminfo, "", &limits), Some(314_572_800));
        // v1 controllers listed together still count as the memory controller.
        let files = cgroup_limit_files("5:memory,hugetlb:/a\n", root.path());
        assert_eq!(files.len(), 2);
        assert!(cgroup_limit_files("", root.path()).is_empty());
    }
}
