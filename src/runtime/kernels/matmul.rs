//! Which of tract-linalg's aarch64 NEON f32 matmul kernels runs each convolution and matmul.
//!
//! On a core tract knows nothing special about (a Cortex-A72 is one), tract 0.23.9 runs every
//! f32 product through `arm64simd_mmm_f32_8x8_gen` (the 16x4 when `n < 8`). tract-linalg also
//! builds a 12x8, a 16x4 and a 24x4 for every aarch64 core: per multiply-add their inner loops
//! cost about the same, but a 12x8 tile is 1.5 times an 8x8 one, so a product takes fewer tiles
//! and pays the per-tile work (fused bias and clamp, the store, tract's tile driver) fewer
//! times, as long as `m` does not round up to much padding. tract's dispatch is a ladder of
//! registered tiers ([`tract_linalg::mmm_tiers::MmmTier`], collected with `inventory`); the
//! project registers one above tract's aarch64 tiers that picks by estimated instruction count.
//! Nothing in tract is patched: a tier naming a kernel the query cannot use defers to tract's.

use tract_linalg::isa::{Arch, IsaSet};
use tract_linalg::mmm::{Query, Suitable};
use tract_onnx::prelude::DatumType;

/// One of tract-linalg's generic-core aarch64 f32 kernels, with the instruction costs this
/// project's model gives it: per step of `k`, the kernel's inner loop as written (16 or 24
/// FMLA, two or three loads, the loop control shared by four steps); per tile, fitted to
/// per-function counts of Lite0 with every product forced onto that kernel (`tbprof.c` under
/// `qemu-aarch64 -cpu cortex-a72`, kernel and `run_blocked` together over its tile count).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Kernel {
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    /// Instructions per step of `k` in the inner loop (multiply-adds, loads, loop control).
    pub per_k: f64,
    /// Instructions per tile outside the inner loop, tract's tile driver included.
    pub per_tile: f64,
    /// Instructions more per partial tile (the last row or column of tiles when `m` or `n` is
    /// not a multiple of the tile): tract-linalg computes it into a scratch tile
    /// (`for_border_tile`) and copies the valid part out (`set_from_tile`). Fitted like
    /// `per_tile`: those two functions' per-inference count over the partial tiles of Lite0
    /// with every product on that kernel.
    pub per_border: f64,
}

/// The four f32 tiles tract-linalg builds for every aarch64 core.
pub(crate) const KERNELS: [Kernel; 4] = [
    Kernel {
        name: "arm64simd_mmm_f32_8x8_gen",
        mr: 8,
        nr: 8,
        per_k: 18.75,
        per_tile: 412.0,
        per_border: 404.0,
    },
    Kernel {
        name: "arm64simd_mmm_f32_12x8_gen",
        mr: 12,
        nr: 8,
        per_k: 26.75,
        per_tile: 462.0,
        per_border: 610.0,
    },
    Kernel {
        name: "arm64simd_mmm_f32_16x4_gen",
        mr: 16,
        nr: 4,
        per_k: 18.75,
        per_tile: 404.0,
        per_border: 483.0,
    },
    Kernel {
        name: "arm64simd_mmm_f32_24x4_gen",
        mr: 24,
        nr: 4,
        per_k: 27.75,
        per_tile: 448.0,
        per_border: 524.0,
    },
];

impl Kernel {
    /// Estimated instructions for an `m x k x n` product.
    pub(crate) fn cost(&self, m: usize, k: usize, n: usize) -> f64 {
        let (rows, cols) = (m.div_ceil(self.mr), n.div_ceil(self.nr));
        // Tiles not wholly inside the product: the partial row and column of them.
        let border = rows * cols - (m / self.mr) * (n / self.nr);
        (rows * cols) as f64 * (self.per_tile + self.per_k * k as f64)
            + border as f64 * self.per_border
    }
}

/// The project's choice for an f32 product of known shape: the cheapest kernel by
/// [`Kernel::cost`]. `None` for a product the model does not speak for (unknown dims, or
/// matrix-vector products, which tract gives its 64x1 kernels).
pub(crate) fn cheapest(m: usize, k: usize, n: usize) -> Option<&'static Kernel> {
    if n < 2 || m == 0 || k == 0 {
        return None;
    }
    KERNELS
        .iter()
        .min_by(|a, b| a.cost(m, k, n).total_cmp(&b.cost(m, k, n)))
}

/// What `CASCADE_MMM` asks for: `tract` (tract's own choice), `auto` (the cost model), or one
/// kernel by tile (`8x8`, `12x8`, `16x4`, `24x4`) for every f32 product of known shape, for
/// A/B measurements with one binary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Policy {
    Tract,
    Auto,
    Fixed(&'static Kernel),
}

impl Policy {
    /// The policy a `CASCADE_MMM` value names, the default when unset, `None` when unknown.
    pub(crate) fn parse(value: Option<&str>) -> Option<Policy> {
        match value {
            None | Some("") => Some(DEFAULT),
            Some("tract") => Some(Policy::Tract),
            Some("auto") => Some(Policy::Auto),
            Some(tile) => KERNELS
                .iter()
                .find(|k| format!("{}x{}", k.mr, k.nr) == tile)
                .map(Policy::Fixed),
        }
    }

    fn from_env() -> Policy {
        let value = std::env::var("CASCADE_MMM").ok();
        Policy::parse(value.as_deref()).unwrap_or_else(|| {
            log::warn!(
                "CASCADE_MMM={value:?} is not tract, auto or a tile (8x8, 12x8, 16x4, 24x4)"
            );
            DEFAULT
        })
    }
}

/// The default policy.
const DEFAULT: Policy = Policy::Auto;

/// The policy in force, read from the environment once.
pub(crate) fn policy() -> Policy {
    static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    *POLICY.get_or_init(Policy::from_env)
}

fn applies(_isa: &IsaSet) -> bool {
    policy() != Policy::Tract
}

fn preferred(
    _isa: &IsaSet,
    accumulator: DatumType,
    query: &Query,
    _suitable: &[Suitable],
) -> Option<&'static str> {
    if accumulator != DatumType::F32 {
        return None;
    }
    let (m, k, n) = (query.m?, query.k?, query.n?);
    let kernel = match policy() {
        Policy::Tract => return None,
        Policy::Auto => cheapest(m, k, n)?,
        Policy::Fixed(kernel) => {
            cheapest(m, k, n)?;
            kernel
        }
    };
    log::debug!("matmul {m}x{k}x{n}: {}", kernel.name);
    Some(kernel.name)
}

inventory::submit! {
    tract_linalg::mmm_tiers::MmmTier {
        arch: Some(Arch::Aarch64),
        // Above every tier tract 0.23.9 declares for aarch64 (the highest is 8).
        precedence: 40,
        name: "cascade",
        applies,
        preferred,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(m: usize, k: usize, n: usize) -> String {
        let kernel = cheapest(m, k, n).expect("a kernel");
        format!("{}x{}", kernel.mr, kernel.nr)
    }

    #[test]
    fn bigger_tiles_where_m_fills_them() {
        // Lite0's expansions (m a multiple of 12) take a 12x8 tile, or a 24x4 where n = 7 x 7
        // would pad 8-column tiles more; 16 and 40 output channels would pad a 12-row tile by
        // a third and a sixth and stay on 16-row or 8-row tiles.
        assert_eq!(tile(96, 16, 12544), "12x8");
        assert_eq!(tile(144, 24, 3136), "12x8");
        assert_eq!(tile(1152, 192, 49), "24x4");
        assert!(["8x8", "16x4"].contains(&tile(16, 32, 12544).as_str()));
        assert!(["8x8", "16x4"].contains(&tile(40, 144, 784).as_str()));
        // The stem (32 output channels): a 12-row tile would be the cheapest by whole tiles,
        // but its third row of tiles is a partial one on each of the 1568 column tiles.
        assert!(["8x8", "16x4"].contains(&tile(32, 27, 12544).as_str()));
        // Matrix-vector products and unknown shapes are left to tract.
        assert!(cheapest(1000, 1280, 1).is_none());
    }

    #[test]
    fn partial_tiles_cost_more() {
        let k12x8 = &KERNELS[1];
        let whole = k12x8.cost(36, 27, 16);
        assert_eq!(whole, 6.0 * (462.0 + 26.75 * 27.0));
        // m = 32: as many tiles as m = 36, the third row of them (two tiles) partial.
        assert_eq!(k12x8.cost(32, 27, 16), whole + 2.0 * 610.0);
        // Partial in both directions: row 3 and column 3 share a tile, counted once.
        assert_eq!(
            k12x8.cost(32, 27, 20),
            9.0 * (462.0 + 26.75 * 27.0) + 5.0 * 610.0
        );
    }

    #[test]
    fn policy_values() {
        assert_eq!(Policy::parse(None), Some(DEFAULT));
        assert_eq!(Policy::parse(Some("tract")), Some(Policy::Tract));
        assert_eq!(Policy::parse(Some("auto")), Some(Policy::Auto));
        assert_eq!(
            Policy::parse(Some("24x4")),
            Some(Policy::Fixed(&KERNELS[3]))
        );
        assert_eq!(Policy::parse(Some("4x4")), None);
    }

    /// The tier is in tract's ladder and its pick is what tract's dispatch returns.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn tract_dispatch_takes_the_tier() {
        let dispatch = tract_linalg::mmm::MmmDispatch::native();
        let ours = dispatch.tiers().iter().any(|t| t.name == "cascade");
        assert_eq!(ours, policy() != Policy::Tract);
        let picked = dispatch
            .preferred_kernel(DatumType::F32, Some(144), Some(24), Some(3136))
            .expect("a kernel");
        let want = match policy() {
            Policy::Tract => "arm64simd_mmm_f32_8x8_gen",
            Policy::Auto => "arm64simd_mmm_f32_12x8_gen",
            Policy::Fixed(k) => k.name,
        };
        assert_eq!(picked.name(), want);
    }
}
