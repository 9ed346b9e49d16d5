//! The CPU cores this process may run on: what kind each is and how fast, from
//! `/proc/cpuinfo` and `/sys/devices/system/cpu`, and the thread count inference should use
//! by default.
//!
//! A big.LITTLE chip (say 4x Cortex-A55 beside 4x Cortex-A76) has cores of very different
//! speed. tract splits a matrix product evenly over its threads, so a thread on a little
//! core holds the whole product back: by default inference uses as many threads as there
//! are big cores.

use std::path::Path;

use serde::Serialize;

use crate::energy::Board;
use crate::runtime::Threads;

/// A core whose speed is at least this share of the fastest core's counts as big. Cores of
/// one kind can differ by a few percent (x86 "favored" cores boost higher); a little core is
/// well below (a Cortex-A55's capacity is about 40% of a Cortex-A76's, its clock 75%).
const BIG_SHARE: f64 = 0.9;

/// One logical CPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Core {
    /// Logical CPU number (`processor` in /proc/cpuinfo, `cpuN` in sysfs).
    pub id: usize,
    /// What the core is: `Cortex-A76` from an ARM part number, the x86 `model name`, or
    /// `unknown`.
    pub kind: String,
    /// The scheduler's relative capacity (`cpu_capacity`; 1024 for the fastest kind), where
    /// the kernel exposes it.
    pub capacity: Option<u64>,
    /// Highest clock, kHz (`cpufreq/cpuinfo_max_freq`), where cpufreq is present.
    pub max_freq_khz: Option<u64>,
    /// One of the fastest cores: capacity (else highest clock) within 10% of the fastest
    /// core's. Every core is big when the kernel tells neither.
    pub big: bool,
}

/// ARM Ltd's part numbers (`CPU part` in /proc/cpuinfo, with `CPU implementer : 0x41`), as
/// in Linux's `arch/arm64/include/asm/cputype.h`.
const ARM_PARTS: &[(u32, &str)] = &[
    (0xb76, "ARM1176"),
    (0xc07, "Cortex-A7"),
    (0xc0f, "Cortex-A15"),
    (0xd03, "Cortex-A53"),
    (0xd04, "Cortex-A35"),
    (0xd05, "Cortex-A55"),
    (0xd07, "Cortex-A57"),
    (0xd08, "Cortex-A72"),
    (0xd09, "Cortex-A73"),
    (0xd0a, "Cortex-A75"),
    (0xd0b, "Cortex-A76"),
    (0xd0c, "Neoverse-N1"),
    (0xd0d, "Cortex-A77"),
    (0xd40, "Neoverse-V1"),
    (0xd41, "Cortex-A78"),
    (0xd44, "Cortex-X1"),
    (0xd46, "Cortex-A510"),
    (0xd47, "Cortex-A710"),
    (0xd48, "Cortex-X2"),
    (0xd49, "Neoverse-N2"),
    (0xd4d, "Cortex-A715"),
    (0xd4e, "Cortex-X3"),
    (0xd80, "Cortex-A520"),
    (0xd81, "Cortex-A720"),
    (0xd82, "Cortex-X4"),
];

/// ARM Ltd's `CPU implementer` code.
const ARM_IMPLEMENTER: u32 = 0x41;

fn parse_hex(text: &str) -> Option<u32> {
    let digits = text.trim();
    let digits = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
        .unwrap_or(digits);
    u32::from_str_radix(digits, 16).ok()
}

/// The kind of one core from its /proc/cpuinfo fields.
fn kind_of(implementer: Option<&str>, part: Option<&str>, model_name: Option<&str>) -> String {
    let implementer = implementer.and_then(parse_hex);
    let part_number = part.and_then(parse_hex);
    if let (Some(ARM_IMPLEMENTER), Some(p)) = (implementer, part_number) {
        if let Some((_, name)) = ARM_PARTS.iter().find(|(n, _)| *n == p) {
            return (*name).to_string();
        }
    }
    if let Some(name) = model_name.map(str::trim).filter(|n| !n.is_empty()) {
        return name.to_string();
    }
    match (implementer, part_number) {
        (Some(i), Some(p)) => format!("CPU implementer {i:#x} part {p:#x}"),
        _ => "unknown".to_string(),
    }
}

/// The cores /proc/cpuinfo lists (one block per `processor`), with their kind.
fn parse_cpuinfo(text: &str) -> Vec<(usize, String)> {
    struct Block<'a> {
        id: usize,
        implementer: Option<&'a str>,
        part: Option<&'a str>,
        model_name: Option<&'a str>,
    }
    let finish = |b: Block| (b.id, kind_of(b.implementer, b.part, b.model_name));
    let mut cores = Vec::new();
    let mut block: Option<Block> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        // `processor` opens a core's block; 32-bit ARM kernels also print a chip-wide
        // `Processor` line, which is not one.
        match key.trim() {
            "processor" => {
                if let Some(b) = block.take() {
                    cores.push(finish(b));
                }
                block = value.parse().ok().map(|id| Block {
                    id,
                    implementer: None,
                    part: None,
                    model_name: None,
                });
            }
            "CPU implementer" => block.iter_mut().for_each(|b| b.implementer = Some(value)),
            "CPU part" => block.iter_mut().for_each(|b| b.part = Some(value)),
            "model name" => block.iter_mut().for_each(|b| b.model_name = Some(value)),
            _ => {}
        }
    }
    if let Some(b) = block {
        cores.push(finish(b));
    }
    cores
}

/// The `cpuN` folders under sys/devices/system/cpu, for when /proc/cpuinfo lists none.
fn sysfs_cpu_ids(cpu_dir: &Path) -> Vec<usize> {
    let mut ids: Vec<usize> = crate::energy::sorted_entries(cpu_dir)
        .into_iter()
        .filter_map(|(name, _)| name.strip_prefix("cpu")?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

fn read_u64(path: &Path) -> Option<u64> {
    crate::energy::read_text(path)?.parse().ok()
}

/// The cores of the machine under `root` (`/` normally; tests pass a folder holding fake
/// `proc/cpuinfo` and `sys/devices/system/cpu/...` files), in CPU number order. Empty when
/// neither /proc/cpuinfo nor sysfs lists any.
pub fn cores_in(root: &Path) -> Vec<Core> {
    let cpu_dir = root.join("sys/devices/system/cpu");
    let cpuinfo = std::fs::read_to_string(root.join("proc/cpuinfo")).unwrap_or_default();
    let mut listed = parse_cpuinfo(&cpuinfo);
    if listed.is_empty() {
        listed = sysfs_cpu_ids(&cpu_dir)
            .into_iter()
            .map(|id| (id, "unknown".to_string()))
            .collect();
    }
    listed.sort_by_key(|(id, _)| *id);
    let mut cores: Vec<Core> = listed
        .into_iter()
        .map(|(id, kind)| {
            let dir = cpu_dir.join(format!("cpu{id}"));
            Core {
                id,
                kind,
                capacity: read_u64(&dir.join("cpu_capacity")),
                max_freq_khz: read_u64(&dir.join("cpufreq/cpuinfo_max_freq")),
                big: true,
            }
        })
        .collect();
    mark_big(&mut cores);
    cores
}

/// Marks the big cores: by capacity where every core has one, else by highest clock where
/// every core has one, else all.
fn mark_big(cores: &mut [Core]) {
    let speeds: Option<Vec<u64>> = cores
        .iter()
        .map(|c| c.capacity)
        .collect::<Option<Vec<_>>>()
        .or_else(|| cores.iter().map(|c| c.max_freq_khz).collect());
    let Some(speeds) = speeds else { return };
    let fastest = speeds.iter().copied().max().unwrap_or(0) as f64;
    for (core, speed) in cores.iter_mut().zip(speeds) {
        core.big = speed as f64 >= BIG_SHARE * fastest;
    }
}

/// Whether the cores are of different speeds (big.LITTLE): some big, some not.
pub fn is_big_little(cores: &[Core]) -> bool {
    cores.iter().any(|c| c.big) && cores.iter().any(|c| !c.big)
}

/// CPU numbers as ranges: `0-3,6`.
pub(crate) fn id_ranges(ids: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            ids[i].to_string()
        } else {
            format!("{}-{}", ids[i], ids[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Cores grouped by what they are, in CPU order: `4x Cortex-A55 (cpu0-3; capacity 414,
/// 1800 MHz), 4x Cortex-A76 (cpu4-7, big; capacity 1024, 2400 MHz)`.
pub fn summary(cores: &[Core]) -> String {
    let mut groups: Vec<(&Core, Vec<usize>)> = Vec::new();
    for core in cores {
        let same = |c: &Core| {
            c.kind == core.kind
                && c.capacity == core.capacity
                && c.max_freq_khz == core.max_freq_khz
                && c.big == core.big
        };
        match groups.iter_mut().find(|(c, _)| same(c)) {
            Some((_, ids)) => ids.push(core.id),
            None => groups.push((core, vec![core.id])),
        }
    }
    let big_little = is_big_little(cores);
    groups
        .iter()
        .map(|(core, ids)| {
            let mut place = format!("cpu{}", id_ranges(ids));
            if big_little && core.big {
                place.push_str(", big");
            }
            let speed: Vec<String> = core
                .capacity
                .map(|c| format!("capacity {c}"))
                .into_iter()
                .chain(core.max_freq_khz.map(|f| format!("{} MHz", f / 1000)))
                .collect();
            let speed = if speed.is_empty() {
                String::new()
            } else {
                format!("; {}", speed.join(", "))
            };
            format!("{}x {} ({place}{speed})", ids.len(), core.kind)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The default thread count and the rule that chose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadChoice {
    pub threads: usize,
    /// Why this many, for the log and `cascade info`.
    pub rule: String,
}

/// The thread count inference should use when the user does not say, given the machine's
/// `cores`, its detected `board` and the cores `available` to this process
/// (`std::thread::available_parallelism`):
///
/// - on a big.LITTLE chip, the number of big cores, so that no thread waits on a little
///   core (whether or not a board file matches: the rule needs only the kernel's figures);
/// - otherwise every available core, as before;
/// - never more than the available cores, nor than a detected board's `default_threads`.
pub fn choose_threads(cores: &[Core], board: Option<&Board>, available: usize) -> ThreadChoice {
    let available = available.max(1);
    let big: Vec<&Core> = cores.iter().filter(|c| c.big).collect();
    let (mut threads, mut rule) = if is_big_little(cores) {
        let little = cores.len() - big.len();
        let kind = |big: bool| {
            let mut kinds: Vec<&str> = Vec::new();
            for core in cores.iter().filter(|c| c.big == big) {
                if !kinds.contains(&core.kind.as_str()) {
                    kinds.push(&core.kind);
                }
            }
            kinds.join("/")
        };
        let mut rule = format!(
            "the {} big cores ({}) of {}, keeping inference off the {little} little ones ({})",
            big.len(),
            kind(true),
            cores.len(),
            kind(false)
        );
        if available < big.len() {
            rule.push_str(&format!(
                ", at most the {available} available to this process"
            ));
        }
        (big.len().min(available), rule)
    } else {
        (
            available,
            format!("all {available} cores available to this process"),
        )
    };
    if let Some(board) = board {
        if board.default_threads < threads {
            threads = board.default_threads;
            rule = format!("the default_threads of board {}", board.name);
        } else {
            rule = format!("board {}: {rule}", board.name);
        }
    }
    ThreadChoice {
        threads: threads.max(1),
        rule,
    }
}

/// The default `Threads` on this machine ([`choose_threads`] with the detected board),
/// logged at info level with the rule that chose it.
pub fn default_threads() -> Threads {
    let root = Path::new("/");
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let choice = choose_threads(&cores_in(root), Board::detect_in(root).as_ref(), available);
    match Threads::new(choice.threads) {
        Ok(threads) => {
            // The default, which the command may spend as threads for one input or as
            // that many workers; what it settles on is logged by the caller.
            log::info!(
                "{} core{} to use by default: {}",
                choice.threads,
                if choice.threads == 1 { "" } else { "s" },
                choice.rule
            );
            threads
        }
        Err(e) => {
            log::warn!("default thread count: {e}; using one thread");
            Threads::ONE
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::energy::tests::put;

    /// /proc/cpuinfo of a 64-bit ARM kernel, one block per core.
    pub(crate) fn arm_cpuinfo(parts: &[&str]) -> String {
        let mut text = String::new();
        for (i, part) in parts.iter().enumerate() {
            text.push_str(&format!(
                "processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n\
                 CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n\
                 CPU part\t: {part}\nCPU revision\t: 3\n\n"
            ));
        }
        text
    }

    /// A fake Raspberry Pi 4 under `root`: 4x Cortex-A72 at 1.8 GHz, equal capacities.
    pub(crate) fn pi4_tree(root: &Path) {
        let mut cpuinfo = arm_cpuinfo(&["0xd08"; 4]);
        cpuinfo.push_str(
            "Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n",
        );
        put(root, "proc/cpuinfo", &cpuinfo);
        for i in 0..4 {
            let cpu = format!("sys/devices/system/cpu/cpu{i}");
            put(root, &format!("{cpu}/cpu_capacity"), "1024\n");
            put(
                root,
                &format!("{cpu}/cpufreq/cpuinfo_max_freq"),
                "1800000\n",
            );
            put(
                root,
                &format!("{cpu}/cpufreq/scaling_governor"),
                "ondemand\n",
            );
        }
    }

    /// A fake big.LITTLE chip (as an RK3588): 4x Cortex-A55 then 4x Cortex-A76.
    pub(crate) fn big_little_tree(root: &Path) {
        let parts = [
            "0xd05", "0xd05", "0xd05", "0xd05", "0xd0b", "0xd0b", "0xd0b", "0xd0b",
        ];
        put(root, "proc/cpuinfo", &arm_cpuinfo(&parts));
        for i in 0..8 {
            let cpu = format!("sys/devices/system/cpu/cpu{i}");
            let (capacity, khz, governor) = if i < 4 {
                ("414", "1800000", "schedutil")
            } else {
                ("1024", "2400000", "performance")
            };
            put(root, &format!("{cpu}/cpu_capacity"), capacity);
            put(root, &format!("{cpu}/cpufreq/cpuinfo_max_freq"), khz);
            put(root, &format!("{cpu}/cpufreq/scaling_governor"), governor);
        }
    }

    /// A fake 2-core x86_64 VM: model names, capacities, no cpufreq.
    pub(crate) fn x86_tree(root: &Path) {
        let block = |i: usize| {
            format!(
                "processor\t: {i}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n\
                 model name\t: AMD EPYC\nflags\t\t: fpu vme de pse\n\n"
            )
        };
        put(root, "proc/cpuinfo", &(block(0) + &block(1)));
        for i in 0..2 {
            put(
                root,
                &format!("sys/devices/system/cpu/cpu{i}/cpu_capacity"),
                "1024\n",
            );
        }
    }

    #[test]
    fn arm_part_numbers_name_the_cores() {
        assert_eq!(kind_of(Some("0x41"), Some("0xd08"), None), "Cortex-A72");
        assert_eq!(kind_of(Some("0x41"), Some("0xd0b"), None), "Cortex-A76");
        assert_eq!(kind_of(Some("0x41"), Some("0xd03"), None), "Cortex-A53");
        // A 32-bit kernel prints a model name too; the part is more precise.
        let v7 = Some("ARMv7 Processor rev 4 (v7l)");
        assert_eq!(kind_of(Some("0x41"), Some("0xd03"), v7), "Cortex-A53");
        // Another implementer's part numbers mean other cores.
        assert_eq!(
            kind_of(Some("0x51"), Some("0x804"), None),
            "CPU implementer 0x51 part 0x804"
        );
        assert_eq!(kind_of(None, None, Some("AMD EPYC")), "AMD EPYC");
        assert_eq!(kind_of(None, None, None), "unknown");
        assert_eq!(kind_of(Some("oops"), Some("0xd08"), None), "unknown");
    }

    #[test]
    fn a_pi4_has_four_equal_cortex_a72_and_uses_them_all() {
        let dir = tempfile::tempdir().unwrap();
        pi4_tree(dir.path());
        let cores = cores_in(dir.path());
        assert_eq!(cores.len(), 4);
        assert!(cores.iter().all(|c| c.kind == "Cortex-A72" && c.big));
        assert_eq!(cores[3].capacity, Some(1024));
        assert_eq!(cores[3].max_freq_khz, Some(1_800_000));
        assert!(!is_big_little(&cores));
        assert_eq!(
            summary(&cores),
            "4x Cortex-A72 (cpu0-3; capacity 1024, 1800 MHz)"
        );
        let board = Board::builtin("rpi4b").unwrap();
        let choice = choose_threads(&cores, Some(&board), 4);
        assert_eq!(choice.threads, 4);
        assert_eq!(
            choice.rule,
            "board rpi4b: all 4 cores available to this process"
        );
        // Fewer cores available (taskset, a cgroup quota): never more threads than those.
        assert_eq!(choose_threads(&cores, Some(&board), 2).threads, 2);
    }

    #[test]
    fn big_little_uses_the_big_cores_only() {
        let dir = tempfile::tempdir().unwrap();
        big_little_tree(dir.path());
        let cores = cores_in(dir.path());
        assert_eq!(cores.len(), 8);
        assert!(is_big_little(&cores));
        let big: Vec<usize> = cores.iter().filter(|c| c.big).map(|c| c.id).collect();
        assert_eq!(big, [4, 5, 6, 7]);
        assert_eq!(cores[0].kind, "Cortex-A55");
        assert_eq!(cores[7].kind, "Cortex-A76");
        assert_eq!(
            summary(&cores),
            "4x Cortex-A55 (cpu0-3; capacity 414, 1800 MHz), \
             4x Cortex-A76 (cpu4-7, big; capacity 1024, 2400 MHz)"
        );
        let choice = choose_threads(&cores, None, 8);
        assert_eq!(choice.threads, 4);
        assert!(
            choice.rule.starts_with("the 4 big cores (Cortex-A76) of 8"),
            "{}",
            choice.rule
        );
        assert!(
            choice.rule.contains("4 little ones (Cortex-A55)"),
            "{}",
            choice.rule
        );
        let few = choose_threads(&cores, None, 2);
        assert_eq!(few.threads, 2);
        assert!(few.rule.contains("at most the 2 available"), "{}", few.rule);

        // Without capacities, the highest clock tells the big cores.
        for i in 0..8 {
            std::fs::remove_file(
                dir.path()
                    .join(format!("sys/devices/system/cpu/cpu{i}/cpu_capacity")),
            )
            .unwrap();
        }
        let cores = cores_in(dir.path());
        assert_eq!(cores.iter().filter(|c| c.big).count(), 4);
        assert!(cores[4].big && !cores[0].big);
    }

    #[test]
    fn cores_of_one_kind_a_few_percent_apart_are_all_big() {
        let dir = tempfile::tempdir().unwrap();
        x86_tree(dir.path());
        // x86 "favored" cores boost a few percent higher than their siblings.
        put(
            dir.path(),
            "sys/devices/system/cpu/cpu0/cpu_capacity",
            "1024",
        );
        put(
            dir.path(),
            "sys/devices/system/cpu/cpu1/cpu_capacity",
            "980",
        );
        let cores = cores_in(dir.path());
        assert!(cores.iter().all(|c| c.big));
    }

    #[test]
    fn an_x86_vm_uses_all_its_cores() {
        let dir = tempfile::tempdir().unwrap();
        x86_tree(dir.path());
        let cores = cores_in(dir.path());
        assert_eq!(cores.len(), 2);
        assert_eq!(cores[0].kind, "AMD EPYC");
        assert_eq!(cores[1].max_freq_khz, None);
        assert_eq!(summary(&cores), "2x AMD EPYC (cpu0-1; capacity 1024)");
        let choice = choose_threads(&cores, None, 2);
        assert_eq!(choice.threads, 2);
        assert_eq!(choice.rule, "all 2 cores available to this process");
    }

    #[test]
    fn an_empty_tree_has_no_cores_and_falls_back_to_what_is_available() {
        let dir = tempfile::tempdir().unwrap();
        assert!(cores_in(dir.path()).is_empty());
        assert_eq!(summary(&[]), "");
        let choice = choose_threads(&[], None, 3);
        assert_eq!(choice.threads, 3);
        assert_eq!(choose_threads(&[], None, 0).threads, 1);
        // sysfs alone still lists the cores.
        put(
            dir.path(),
            "sys/devices/system/cpu/cpu1/cpu_capacity",
            "1024",
        );
        put(
            dir.path(),
            "sys/devices/system/cpu/cpu0/cpu_capacity",
            "1024",
        );
        put(
            dir.path(),
            "sys/devices/system/cpu/cpufreq/policy0/scaling_governor",
            "x",
        );
        let cores = cores_in(dir.path());
        assert_eq!(cores.iter().map(|c| c.id).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(cores[0].kind, "unknown");
    }

    #[test]
    fn a_board_caps_the_default_at_its_default_threads() {
        let dir = tempfile::tempdir().unwrap();
        pi4_tree(dir.path());
        let cores = cores_in(dir.path());
        let mut board = Board::builtin("rpi4b").unwrap();
        board.default_threads = 3;
        let choice = choose_threads(&cores, Some(&board), 4);
        assert_eq!(choice.threads, 3);
        assert_eq!(choice.rule, "the default_threads of board rpi4b");
    }

    #[test]
    fn id_ranges_compress_runs() {
        assert_eq!(id_ranges(&[0, 1, 2, 3]), "0-3");
        assert_eq!(id_ranges(&[0, 2, 3, 4, 7]), "0,2-4,7");
        assert_eq!(id_ranges(&[5]), "5");
        assert_eq!(id_ranges(&[]), "");
    }
}
