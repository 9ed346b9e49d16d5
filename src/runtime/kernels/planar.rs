//! The channel-first depthwise convolution (3x3, stride 1, one column of padding on each side)
//! with its clamp, for the one depthwise convolution tract leaves channel-first.
//!
//! tract moves a depthwise convolution channel-last by pushing the axis change to its
//! neighbours; EfficientNet-Lite's first one sits right behind the stem, a regular convolution
//! that forwards the move to the model's input, which is fixed, so the move is refused and the
//! convolution runs channel-first (`[N, C, H, W]`) on tract's `depthwise_w_f32` with the ReLU6
//! as a separate pass: 5.2 M instructions of a Lite0 inference for 0.9 M FMLA. Here each channel
//! is a plane whose weights are nine scalars, so the vectors run along a row: four adjacent
//! output points of one channel per vector, the filter's three columns read as three unaligned
//! loads of the input row (one column left, centred, one right), and the nine weights
//! broadcast in registers. Four output rows are computed together, so each of the six input
//! rows they read is loaded once for all of them. The left and right padding columns come from
//! shifting a zero into the loaded vector, so every output point takes the same path; a row
//! whose width is not a multiple of four ends on a vector that overlaps the one before it.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::depthwise::Geometry;
use super::lanes::{zeros, Lanes};

/// Whether [`run`] covers a geometry: a 3x3 filter at stride 1 with one column of padding on
/// each side (the output as wide as the input), on rows of at least four points. Rows above
/// and below the image may be padded by any amount the filter allows.
pub(crate) fn covers(g: &Geometry) -> bool {
    g.k == 3
        && g.s == 1
        && g.pad_left == 1
        && g.ow == g.w
        && g.w >= 4
        && g.pad_top < 3
        && g.h >= 1
        && g.oh >= 1
}

/// The convolution of `n` channel-first images (`input.len() / (c * h * w)`) with `weights`
/// (`[C, 3 * 3]`, channel by channel, taps row by row, as tract holds a channel-first
/// depthwise kernel) and `bias`, clamped to `clamp` when given, into `output`
/// (`[N, C, OH, OW]`). Channels are split across tract's executor.
pub(crate) fn run(
    g: &Geometry,
    c: usize,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    output: &mut [f32],
) -> TractResult<()> {
    ensure!(covers(g), "channel-first depthwise geometry {g:?}");
    ensure!(c > 0, "depthwise without channels");
    ensure!(
        weights.len() == 9 * c && bias.len() == c,
        "depthwise weights length"
    );
    let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
    ensure!(input.len() % (c * plane_in) == 0, "depthwise input length");
    let n = input.len() / (c * plane_in);
    ensure!(output.len() == n * c * plane_out, "depthwise output length");
    let zeros = zeros(g.w);
    for (x, y) in input
        .chunks_exact(c * plane_in)
        .zip(output.chunks_exact_mut(c * plane_out))
    {
        tract_linalg::multithread::par_chunks_mut(y, plane_out, c * plane_out, |first, planes| {
            for (i, out) in planes.chunks_exact_mut(plane_out).enumerate() {
                let ch = first + i;
                let plane = Plane {
                    g,
                    input: &x[ch * plane_in..(ch + 1) * plane_in],
                    weights: &weights[ch * 9..ch * 9 + 9],
                    bias: bias[ch],
                    zeros: &zeros,
                };
                #[cfg(target_arch = "aarch64")]
                plane.run::<std::arch::aarch64::float32x4_t>(clamp, out);
                #[cfg(not(target_arch = "aarch64"))]
                plane.run::<super::lanes::Portable>(clamp, out);
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// One channel of one image.
struct Plane<'a> {
    g: &'a Geometry,
    /// `[H, W]`.
    input: &'a [f32],
    /// Nine taps, row by row.
    weights: &'a [f32],
    bias: f32,
    /// At least `W` zeros: the input row above or below the image.
    zeros: &'a [f32],
}

impl Plane<'_> {
    /// Writes the whole `[OH, OW]` output plane.
    fn run<V: Lanes>(&self, clamp: Option<(f32, f32)>, out: &mut [f32]) {
        match clamp {
            Some((lo, hi)) => self.rows::<V, true>(lo, hi, out),
            None => self.rows::<V, false>(0.0, 0.0, out),
        }
    }

    fn rows<V: Lanes, const CLAMP: bool>(&self, lo: f32, hi: f32, out: &mut [f32]) {
        let g = self.g;
        debug_assert!(
            covers(g)
                && self.input.len() == g.h * g.w
                && self.weights.len() == 9
                && self.zeros.len() >= g.w
                && out.len() == g.oh * g.ow
        );
        let rows = Rows::<V> {
            w: std::array::from_fn(|ky| {
                std::array::from_fn(|kx| V::splat(self.weights[ky * 3 + kx]))
            }),
            b: V::splat(self.bias),
            lo: V::splat(lo),
            hi: V::splat(hi),
            width: g.w,
        };
        // Input row `oy + ky - pad_top` of filter row `ky`, or zeros outside the image.
        let input_row = |oy: usize, ky: usize| -> *const f32 {
            match (oy + ky).checked_sub(g.pad_top) {
                Some(iy) if iy < g.h => self.input[iy * g.w..].as_ptr(),
                _ => self.zeros.as_ptr(),
            }
        };
        let out = out.as_mut_ptr();
        let mut oy = 0;
        while oy + 4 <= g.oh {
            let input: [*const f32; 6] = std::array::from_fn(|r| input_row(oy, r));
            // SAFETY: every input row is `w` readable f32 (an image row or the zeros); output
            // rows `oy .. oy + 4` are below `oh`, each `ow == w` f32.
            unsafe { rows.run::<6, CLAMP>(&input, out.add(oy * g.ow)) };
            oy += 4;
        }
        while oy < g.oh {
            let input: [*const f32; 3] = std::array::from_fn(|r| input_row(oy, r));
            // SAFETY: as above, for output row `oy < oh`.
            unsafe { rows.run::<3, CLAMP>(&input, out.add(oy * g.ow)) };
            oy += 1;
        }
    }
}

/// The filter, bias and clamp in registers, for rows of one plane.
struct Rows<V> {
    w: [[V; 3]; 3],
    b: V,
    lo: V,
    hi: V,
    /// Points in an input and an output row (equal: one padding column on each side).
    width: usize,
}

impl<V: Lanes> Rows<V> {
    /// `IN - 2` consecutive output rows from their `IN` input rows, four points at a time.
    ///
    /// # Safety
    /// Each of `input` must be readable for `width` f32, `width >= 4`, and `out` writable for
    /// `(IN - 2) * width` f32.
    #[inline(always)]
    unsafe fn run<const IN: usize, const CLAMP: bool>(
        &self,
        input: &[*const f32; IN],
        out: *mut f32,
    ) {
        let last = self.width - 4;
        // SAFETY (all steps): the caller's; each step's columns are checked below.
        unsafe {
            if last == 0 {
                self.step::<IN, true, true, CLAMP>(input, out, 0);
                return;
            }
            self.step::<IN, true, false, CLAMP>(input, out, 0);
            let mut x0 = 4;
            while x0 < last {
                self.step::<IN, false, false, CLAMP>(input, out, x0);
                x0 += 4;
            }
            self.step::<IN, false, true, CLAMP>(input, out, last);
        }
    }

    /// Output points `x0 .. x0 + 4` of each output row. `LEFT`: `x0` is 0 and the column left
    /// of it is padding; `RIGHT`: `x0 + 4` is the width and the column right of the last point
    /// is padding. Otherwise the neighbouring columns are read from the input.
    ///
    /// # Safety
    /// As [`Rows::run`], with `x0 + 4 <= width`, `x0 == 0` when `LEFT` (else `x0 >= 1`), and
    /// `x0 + 4 == width` when `RIGHT` (else `x0 + 4 < width`).
    #[inline(always)]
    unsafe fn step<const IN: usize, const LEFT: bool, const RIGHT: bool, const CLAMP: bool>(
        &self,
        input: &[*const f32; IN],
        out: *mut f32,
        x0: usize,
    ) {
        let mut acc = [self.b; IN];
        for (r, row) in input.iter().enumerate() {
            // SAFETY: columns `x0 - 1 .. x0 + 5` of this row, except the padding ones, are
            // inside it (the caller's).
            let (left, mid, right) = unsafe {
                let p = row.add(x0);
                let mid = V::load(p);
                let left = if LEFT {
                    mid.shift_in_low()
                } else {
                    V::load(p.sub(1))
                };
                let right = if RIGHT {
                    mid.shift_in_high()
                } else {
                    V::load(p.add(1))
                };
                (left, mid, right)
            };
            for (o, a) in acc.iter_mut().take(IN - 2).enumerate() {
                let ky = r.wrapping_sub(o);
                if ky < 3 {
                    let w = &self.w[ky];
                    *a = a
                        .mul_add(left, w[0])
                        .mul_add(mid, w[1])
                        .mul_add(right, w[2]);
                }
            }
        }
        for (o, a) in acc.iter().take(IN - 2).enumerate() {
            let v = if CLAMP { a.clamp(self.lo, self.hi) } else { *a };
            // SAFETY: points `x0 .. x0 + 4` of output row `o`, inside it.
            unsafe { v.store(out.add(o * self.width + x0)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::kernels::depthwise::tests::{assert_matches, case, reference, Layout};

    fn geometry(h: usize, w: usize, pad_top: usize, pad_bottom: usize) -> Geometry {
        Geometry {
            k: 3,
            s: 1,
            pad_top,
            pad_left: 1,
            h,
            w,
            oh: h + pad_top + pad_bottom - 2,
            ow: w,
            channels_first: true,
        }
    }

    fn check(g: Geometry, c: usize, n: usize, clamp: Option<(f32, f32)>) {
        let (x, w, b) = case(&g, c, n);
        let want = reference(&g, c, &x, &w, &b, clamp, Layout::ChannelFirst);
        let mut got = vec![f32::NAN; want.len()];
        run(&g, c, &x, &w, &b, clamp, &mut got).unwrap();
        assert_matches(&g, c, &got, &want);
    }

    #[test]
    fn matches_the_definition() {
        // Widths: one vector, a multiple of four, odd, and one past a multiple (the last vector
        // overlaps); heights below, at and past a group of four rows; padding rows as SAME
        // gives them and none.
        for (pt, pb) in [(1, 1), (0, 0), (2, 0), (0, 2)] {
            for (h, w) in [
                (1, 4),
                (2, 5),
                (3, 7),
                (4, 8),
                (5, 9),
                (7, 7),
                (9, 13),
                (14, 14),
            ] {
                if h + pt + pb < 3 {
                    continue;
                }
                let g = geometry(h, w, pt, pb);
                for c in [1, 3, 4] {
                    check(g, c, 1, Some((0.0, 6.0)));
                    check(g, c, 1, None);
                }
            }
        }
        check(geometry(6, 10, 1, 1), 5, 3, Some((-1.0, 1.0)));
    }

    #[test]
    fn large_planes() {
        // EfficientNet-Lite0's and Lite2's first depthwise convolutions, fewer channels.
        check(geometry(112, 112, 1, 1), 3, 1, Some((0.0, 6.0)));
        check(geometry(130, 130, 1, 1), 2, 1, Some((0.0, 6.0)));
    }

    #[test]
    fn threads_split_channels_alike() {
        let pool = tract_linalg::multithread::Executor::multithread(3);
        tract_linalg::multithread::multithread_tract_scope(pool, || {
            check(geometry(56, 56, 1, 1), 32, 1, Some((0.0, 6.0)));
        });
    }

    #[test]
    fn what_it_covers() {
        assert!(covers(&geometry(112, 112, 1, 1)));
        assert!(!covers(&geometry(3, 3, 1, 1)), "rows under four points");
        let mut g = geometry(8, 8, 1, 1);
        g.s = 2;
        assert!(!covers(&g), "stride 2");
        let mut g = geometry(8, 8, 1, 1);
        g.k = 5;
        assert!(!covers(&g), "5x5");
        let mut g = geometry(8, 8, 1, 1);
        g.pad_left = 0;
        g.ow = 6;
        assert!(!covers(&g), "no padding columns");
    }
}
