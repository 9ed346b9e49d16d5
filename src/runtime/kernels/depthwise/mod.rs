//! A depthwise convolution (3x3 or 5x5, stride 1 or 2, channel-last f32) with the clamp that
//! follows it (ReLU6) applied before the store, in place of tract's `DepthWiseConv` and its
//! `OptBinChain(Max+Min)` pass.
//!
//! For each block of four channels the filter's taps stay in vector registers while a row of
//! output points is computed, four points at a time: every input column the block loads feeds
//! each of those points it reaches (with stride 1, a 3x3 filter loads 18 input vectors for four
//! points, 36 multiply-adds, where tract loads 36 plus the 36 weights, 36 tap indices and 36
//! offsets; a 5x5 one 40 for 100). A step's loads address each column as one row register plus
//! one column-offset register shared by all rows, so even a 5x5 filter's 25 taps, four sums
//! and the clamp fit in the 32 vector registers with nothing spilled. The input is read where
//! it lies: filter rows above or below the image are skipped (a path per count of them), and
//! the output columns whose window crosses the left or right edge go in one step per edge that
//! reads only the columns inside the image, so no step tests a tap. Output rows are split
//! across tract's executor, as tract splits its own depthwise channels. The one depthwise
//! convolution tract leaves channel-first runs on [`super::planar`].
//!
//! Substitution happens after `into_optimized`: the decluttered graph's `Conv` nodes give the
//! geometry (kernel, stride, padding), which tract's `DepthWiseConv` does not expose, and each
//! `DepthWiseConv` keeps its `Conv`'s name. A node whose facts do not match what was recorded,
//! or whose weights or bias are not constants, is left to tract.
//!
//! The module follows the work: [`graph`] finds the convolutions and puts the operator in
//! their place, [`op`] is that operator as tract sees it, [`band`] computes a band of output
//! rows on four-lane vectors ([`super::lanes`]).

mod band;
mod graph;
mod op;
#[cfg(test)]
pub(super) mod tests;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

pub(crate) use graph::{record, substitute};

/// Where the project's operator replaces tract's: by default on aarch64, where it measured
/// better than tract's (see the README's ARM work section), and nowhere else;
/// `CASCADE_DEPTHWISE=project` or `=tract` overrides, for A/B measurements with one binary.
pub(crate) fn enabled() -> bool {
    match std::env::var("CASCADE_DEPTHWISE").as_deref() {
        Ok("project") => true,
        Ok("tract") => false,
        _ => cfg!(target_arch = "aarch64"),
    }
}

/// The spatial geometry of one depthwise convolution: what tract's optimized op hides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Geometry {
    /// Kernel side (square kernels only), 3 or 5.
    pub k: usize,
    /// Stride (the same on both axes), 1 or 2.
    pub s: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    /// `[N, C, H, W]` rather than `[N, H, W, C]`: the layout tract left this convolution in
    /// (channel-first ones run on [`super::planar`]).
    pub channels_first: bool,
}

impl Geometry {
    /// Whether the kernels below (channel-last) or [`super::planar`] (channel-first) cover it.
    fn supported(&self) -> bool {
        if self.channels_first {
            return super::planar::covers(self);
        }
        matches!(self.k, 3 | 5)
            && matches!(self.s, 1 | 2)
            && self.pad_top < self.k
            && self.pad_left < self.k
            && self.oh >= 1
            && self.ow >= 1
            && self.h >= 1
            && self.w >= 1
    }
}

/// Tap-major weights (`[K * K, C]`, as tract's channel-last kernel holds them) regrouped by
/// block of four channels, `[C / 4, K * K, 4]`: one block's taps are then contiguous.
pub(crate) fn pack_weights(k: usize, c: usize, tap_major: &[f32]) -> TractResult<Vec<f32>> {
    ensure!(
        c % 4 == 0 && tap_major.len() == k * k * c,
        "depthwise weights length"
    );
    let mut packed = Vec::with_capacity(tap_major.len());
    for cb in 0..c / 4 {
        for tap in tap_major.chunks_exact(c) {
            packed.extend_from_slice(&tap[cb * 4..cb * 4 + 4]);
        }
    }
    Ok(packed)
}

/// The convolution of `n` images (`input.len() / (h * w * c)`) with `packed` weights (from
/// [`pack_weights`]) and `bias`, clamped to `clamp` when given, into `output`. `c` must be a
/// multiple of four.
pub(crate) fn run(
    g: &Geometry,
    c: usize,
    input: &[f32],
    packed: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    output: &mut [f32],
) -> TractResult<()> {
    ensure!(g.supported(), "unsupported depthwise geometry {g:?}");
    ensure!(
        c > 0 && c % 4 == 0,
        "depthwise channels {c} are not a multiple of 4"
    );
    let (in_image, out_image) = (g.h * g.w * c, g.oh * g.ow * c);
    ensure!(input.len() % in_image == 0, "depthwise input length");
    let n = input.len() / in_image;
    ensure!(output.len() == n * out_image, "depthwise output length");
    ensure!(
        packed.len() == g.k * g.k * c && bias.len() == c,
        "depthwise weights length"
    );
    for (x, y) in input
        .chunks_exact(in_image)
        .zip(output.chunks_exact_mut(out_image))
    {
        #[cfg(target_arch = "aarch64")]
        band::image::<std::arch::aarch64::float32x4_t>(g, c, x, packed, bias, clamp, y)?;
        #[cfg(not(target_arch = "aarch64"))]
        band::image::<super::lanes::Portable>(g, c, x, packed, bias, clamp, y)?;
    }
    Ok(())
}
