//! A band of output rows of one image, block of four channels by block.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::Geometry;
use crate::runtime::kernels::lanes::{zeros, Lanes};

/// One image: output rows split across tract's executor.
pub(super) fn image<V: Lanes>(
    g: &Geometry,
    c: usize,
    input: &[f32],
    packed: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    output: &mut [f32],
) -> TractResult<()> {
    let out_base = output.as_mut_ptr() as usize;
    let total = output.len();
    let mut rows = vec![(); g.oh];
    tract_linalg::multithread::par_chunks_mut(&mut rows, 1, total, |first, chunk| {
        let band = Band {
            g,
            c,
            input,
            packed,
            bias,
            oy0: first,
            oy1: first + chunk.len(),
        };
        // SAFETY: `out_base` is `output`, `g.oh * g.ow * c` f32 long (checked by `run`); this
        // band writes only its own output rows `oy0..oy1`, which no other band writes.
        unsafe {
            let out = out_base as *mut f32;
            match (g.k, g.s, clamp) {
                (3, 1, Some((lo, hi))) => band.run::<V, 3, 1, 4, true>(out, lo, hi),
                (3, 2, Some((lo, hi))) => band.run::<V, 3, 2, 4, true>(out, lo, hi),
                (5, 1, Some((lo, hi))) => band.run::<V, 5, 1, 4, true>(out, lo, hi),
                (5, 2, Some((lo, hi))) => band.run::<V, 5, 2, 4, true>(out, lo, hi),
                (3, 1, None) => band.run::<V, 3, 1, 4, false>(out, 0.0, 0.0),
                (3, 2, None) => band.run::<V, 3, 2, 4, false>(out, 0.0, 0.0),
                (5, 1, None) => band.run::<V, 5, 1, 4, false>(out, 0.0, 0.0),
                (5, 2, None) => band.run::<V, 5, 2, 4, false>(out, 0.0, 0.0),
                _ => bail!("unsupported depthwise geometry {g:?}"),
            }
        }
        Ok(())
    })
}

/// Output rows `oy0..oy1` of one image.
struct Band<'a> {
    g: &'a Geometry,
    c: usize,
    input: &'a [f32],
    packed: &'a [f32],
    bias: &'a [f32],
    oy0: usize,
    oy1: usize,
}

impl Band<'_> {
    /// Reads the input where it lies (`[H, W, C]`). Filter rows above or below the image are
    /// skipped (for the usual one or two, by a path specialized for them; otherwise they read
    /// a shared row of zeros), and the output columns whose window crosses the left or right
    /// edge go in one step per edge that loads only the columns inside the image. For each
    /// output row and block of four channels, the block's taps are loaded into registers once
    /// and serve the whole row.
    ///
    /// # Safety
    /// `out` must be writable for the image's `g.oh * g.ow * c` outputs; `input`, `packed` and
    /// `bias` must have the lengths `run` checks, `c` be a multiple of 4, and `K`, `S` be
    /// `g.k`, `g.s`.
    #[inline(never)]
    unsafe fn run<V: Lanes, const K: usize, const S: usize, const N: usize, const CLAMP: bool>(
        &self,
        out: *mut f32,
        lo: f32,
        hi: f32,
    ) {
        let (g, c) = (self.g, self.c);
        let columns = Columns::new(g);
        // A row of zeros stands for the padding rows, when this band reads any.
        let reads_padding = self.oy0 * S < g.pad_top || (self.oy1 - 1) * S + K > g.h + g.pad_top;
        let zeros = zeros(if reads_padding { g.w * c } else { 0 });
        let x = self.input.as_ptr();
        let row = Row {
            band: self,
            columns: &columns,
            // Byte offsets of a step's columns from its first, and of its points' outputs from
            // the first's: one register each, used by every row. Hidden from the optimizer,
            // which otherwise keeps an address per row and column (30 for a 5x5 filter two
            // points at a time) and spills them.
            offsets: std::array::from_fn(|col| opaque(col * c * 4)),
            lo: V::splat(lo),
            hi: V::splat(hi),
        };
        for oy in self.oy0..self.oy1 {
            let rows: [*const f32; K] = std::array::from_fn(|ky| {
                match (oy * S + ky).checked_sub(g.pad_top) {
                    // SAFETY: row `iy < h` of the image.
                    Some(iy) if iy < g.h => unsafe { x.add(iy * g.w * c) },
                    _ => zeros.as_ptr(),
                }
            });
            // SAFETY: output row `oy < oh`.
            let out = unsafe { out.add(oy * g.ow * c) };
            // Filter rows above and below the image.
            let top = g.pad_top.saturating_sub(oy * S);
            let bottom = (oy * S + K).saturating_sub(g.pad_top + g.h);
            // SAFETY: the rows are image rows or zeros, `w * c` long; the output row `ow * c`.
            unsafe {
                match (top, bottom) {
                    (0, 0) => row.run::<K, S, N, CLAMP, 0, 0>(&rows, out),
                    (1, 0) => row.run::<K, S, N, CLAMP, 1, 0>(&rows, out),
                    (2, 0) => row.run::<K, S, N, CLAMP, 2, 0>(&rows, out),
                    (0, 1) => row.run::<K, S, N, CLAMP, 0, 1>(&rows, out),
                    (0, 2) => row.run::<K, S, N, CLAMP, 0, 2>(&rows, out),
                    // Padding rows read as zeros (small images).
                    _ => row.run::<K, S, N, CLAMP, 0, 0>(&rows, out),
                }
            }
        }
    }
}

/// How an output row's columns split, from the geometry: `inner.0 .. inner.1` have windows
/// inside the image; those before cross the left edge, those after the right one.
struct Columns {
    inner: (usize, usize),
    pad_left: usize,
    w: usize,
    ow: usize,
    /// The points before `inner.0` can go in one step: their window crosses only the left
    /// edge.
    left_step: bool,
    /// How many columns of the window of the points after `inner.1` lie beyond the right edge,
    /// when they can go in one step (their window starts inside the image).
    right_step: Option<usize>,
}

impl Columns {
    fn new(g: &Geometry) -> Columns {
        let (k, s) = (g.k, g.s);
        let first = g.pad_left.div_ceil(s).min(g.ow);
        let end = match (g.w + g.pad_left).checked_sub(k) {
            Some(span) => (span / s + 1).min(g.ow),
            None => 0,
        };
        let inner = (first, end.max(first));
        let left_step = first > 0 && (first - 1) * s + k <= g.w + g.pad_left;
        let right_step = (inner.1 < g.ow && inner.1 * s >= g.pad_left)
            .then(|| ((g.ow - 1) * s + k).saturating_sub(g.pad_left + g.w));
        Columns {
            inner,
            pad_left: g.pad_left,
            w: g.w,
            ow: g.ow,
            left_step,
            right_step,
        }
    }
}

/// What every output row of a band shares: the column split, the step offsets and the clamp.
struct Row<'a, V> {
    band: &'a Band<'a>,
    columns: &'a Columns,
    offsets: [usize; MAX_COLUMNS],
    lo: V,
    hi: V,
}

impl<V: Lanes> Row<'_, V> {
    /// One output row, block by block of four channels, with filter rows `TOP .. K - BOTTOM`
    /// (the others are above or below the image).
    ///
    /// # Safety
    /// As [`Band::run`]; `rows` are the filter rows' input rows (image rows or zeros, `w * c`
    /// long), `out` the output row, `ow * c` long.
    #[inline(always)]
    unsafe fn run<
        const K: usize,
        const S: usize,
        const N: usize,
        const CLAMP: bool,
        const TOP: usize,
        const BOTTOM: usize,
    >(
        &self,
        rows: &[*const f32; K],
        out: *mut f32,
    ) {
        let (band, cols) = (self.band, self.columns);
        let c = band.c;
        for cb in 0..c / 4 {
            // SAFETY: block `cb` of the packed weights: K * K taps of 4 from `cb * K * K * 4`;
            // `cb * 4 + 4 <= c == bias.len()`; rows and output are `w` and `ow` points of `c`
            // channels, of which this block reads and writes `cb * 4 .. cb * 4 + 4`.
            unsafe {
                let wb = band.packed.as_ptr().add(cb * K * K * 4);
                let block = Block::<V, K, TOP, BOTTOM> {
                    rows: rows.map(|r| r.add(cb * 4)),
                    c,
                    w: std::array::from_fn(|ky| {
                        std::array::from_fn(|kx| V::load(wb.add((ky * K + kx) * 4)))
                    }),
                    b: V::load(band.bias.as_ptr().add(cb * 4)),
                    lo: self.lo,
                    hi: self.hi,
                };
                let out = out.add(cb * 4);
                block.left::<S, CLAMP>(cols, &self.offsets, out);
                block.right::<S, CLAMP>(cols, &self.offsets, out);
                if cols.inner.1 > cols.inner.0 {
                    block.inner::<S, N, CLAMP>(
                        cols.inner.0 * S - cols.pad_left,
                        &self.offsets,
                        out.add(cols.inner.0 * c),
                        cols.inner.1 - cols.inner.0,
                    );
                }
            }
        }
    }
}

/// One output row's block of four channels: the filter rows' input rows (offset to the
/// block's channels), the taps and bias in registers, and the clamp. Filter rows
/// `TOP .. K - BOTTOM` are read; the others lie above or below the image.
struct Block<V, const K: usize, const TOP: usize, const BOTTOM: usize> {
    rows: [*const f32; K],
    c: usize,
    w: [[V; K]; K],
    b: V,
    lo: V,
    hi: V,
}

impl<V: Lanes, const K: usize, const TOP: usize, const BOTTOM: usize> Block<V, K, TOP, BOTTOM> {
    #[inline(always)]
    fn finish<const CLAMP: bool>(&self, acc: V) -> V {
        if CLAMP {
            acc.clamp(self.lo, self.hi)
        } else {
            acc
        }
    }

    /// The rows moved by `cols` columns (negative: left of the image, never read there).
    #[inline(always)]
    fn shifted(&self, cols: isize) -> [*const f32; K] {
        self.rows.map(|r| r.wrapping_offset(cols * self.c as isize))
    }

    /// The output points before `cols.inner.0`, whose window crosses the left edge: in one
    /// step that reads only the columns inside the image for the usual cases (one or two
    /// points, one or two columns of padding), else point by point.
    ///
    /// # Safety
    /// Every row must be readable at `ix * c .. ix * c + 4` for `ix < w`, and `out` writable at
    /// `j * c .. j * c + 4` for `j < ow`; `offsets[i]` must be `i * c * 4`.
    #[inline(always)]
    unsafe fn left<const S: usize, const CLAMP: bool>(
        &self,
        cols: &Columns,
        offsets: &[usize; MAX_COLUMNS],
        out: *mut f32,
    ) {
        // The step's window starts `pad_left` columns left of the image.
        let rows = self.shifted(-(cols.pad_left as isize));
        // SAFETY: the step's points are `0 .. inner.0`; its window's columns from `pad_left` on
        // are inside the image (`left_step`).
        unsafe {
            match (cols.inner.0, cols.pad_left, cols.left_step) {
                (0, _, _) => {}
                (1, 1, true) => self.step::<S, 1, CLAMP, 1, 0>(&rows, offsets, out),
                (1, 2, true) => self.step::<S, 1, CLAMP, 2, 0>(&rows, offsets, out),
                (2, 2, true) => self.step::<S, 2, CLAMP, 2, 0>(&rows, offsets, out),
                _ => {
                    for ox in 0..cols.inner.0 {
                        self.edge::<S, CLAMP>(ox, cols, offsets, out.add(ox * self.c));
                    }
                }
            }
        }
    }

    /// The output points from `cols.inner.1` on, whose window crosses the right edge: as
    /// [`Block::left`].
    ///
    /// # Safety
    /// As [`Block::left`].
    #[inline(always)]
    unsafe fn right<const S: usize, const CLAMP: bool>(
        &self,
        cols: &Columns,
        offsets: &[usize; MAX_COLUMNS],
        out: *mut f32,
    ) {
        let first = cols.inner.1;
        let x0 = (first * S) as isize - cols.pad_left as isize;
        let rows = self.shifted(x0);
        // SAFETY: the step's points are `inner.1 .. ow`, its window starts at column `x0 >= 0`
        // and all but its last `skip` columns are inside the image (`right_step`).
        unsafe {
            let out_first = out.add(first * self.c);
            match (cols.ow - first, cols.right_step) {
                (0, _) => {}
                (1, Some(1)) => self.step::<S, 1, CLAMP, 0, 1>(&rows, offsets, out_first),
                (1, Some(2)) => self.step::<S, 1, CLAMP, 0, 2>(&rows, offsets, out_first),
                (2, Some(2)) => self.step::<S, 2, CLAMP, 0, 2>(&rows, offsets, out_first),
                _ => {
                    for ox in first..cols.ow {
                        self.edge::<S, CLAMP>(ox, cols, offsets, out.add(ox * self.c));
                    }
                }
            }
        }
    }

    /// Output column `ox`, whose window crosses the image's left or right edge: taps outside
    /// the image are skipped. The usual cases (up to two taps off either side, as 3x3 and 5x5
    /// padding gives) take a step specialized for them, with no test per tap.
    ///
    /// # Safety
    /// As [`Block::left`], with `out` writable for four f32.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn edge<const S: usize, const CLAMP: bool>(
        &self,
        ox: usize,
        cols: &Columns,
        offsets: &[usize; MAX_COLUMNS],
        out: *mut f32,
    ) {
        let start = ox * S;
        // Taps off the left edge, and off the right one.
        let left = cols.pad_left.saturating_sub(start);
        let right = (start + K).saturating_sub(cols.pad_left + cols.w);
        let rows = self.shifted(start as isize - cols.pad_left as isize);
        if left + right < K {
            // SAFETY: the window's taps `left .. K - right` are columns inside the image.
            unsafe {
                match (left, right) {
                    (1, 0) => return self.step::<S, 1, CLAMP, 1, 0>(&rows, offsets, out),
                    (2, 0) => return self.step::<S, 1, CLAMP, 2, 0>(&rows, offsets, out),
                    (0, 1) => return self.step::<S, 1, CLAMP, 0, 1>(&rows, offsets, out),
                    (0, 2) => return self.step::<S, 1, CLAMP, 0, 2>(&rows, offsets, out),
                    (1, 1) => return self.step::<S, 1, CLAMP, 1, 1>(&rows, offsets, out),
                    (2, 2) => return self.step::<S, 1, CLAMP, 2, 2>(&rows, offsets, out),
                    _ => {}
                }
            }
        }
        let mut acc = self.b;
        for ky in TOP..K - BOTTOM {
            for kx in 0..K {
                if let Some(ix) = (start + kx)
                    .checked_sub(cols.pad_left)
                    .filter(|&ix| ix < cols.w)
                {
                    // SAFETY: column `ix < w` of this row.
                    let x = unsafe { V::load(self.rows[ky].add(ix * self.c)) };
                    acc = acc.mul_add(x, self.w[ky][kx]);
                }
            }
        }
        // SAFETY: the caller's.
        unsafe { self.finish::<CLAMP>(acc).store(out) };
    }

    /// `count` output columns whose windows are inside the image, the first one's starting at
    /// input column `x0`, `N` points at a time (the last few in one shorter step): each input
    /// column of a step's window is loaded once and feeds every point whose filter covers it.
    ///
    /// # Safety
    /// Every row must be readable at `ix * c .. ix * c + 4` for `ix` up to
    /// `x0 + (count - 1) * S + K - 1`, `out` writable at `j * c .. j * c + 4` for `j` below
    /// `count`, and `offsets[i]` be `i * c * 4`.
    #[inline(always)]
    unsafe fn inner<const S: usize, const N: usize, const CLAMP: bool>(
        &self,
        x0: usize,
        offsets: &[usize; MAX_COLUMNS],
        mut out: *mut f32,
        count: usize,
    ) {
        let c = self.c;
        let mut rows = self.rows.map(|r| r.wrapping_add(x0 * c));
        let mut left = count;
        // SAFETY (every step): its points are below `count` (the caller's bounds).
        unsafe {
            while left >= N {
                self.step::<S, N, CLAMP, 0, 0>(&rows, offsets, out);
                (rows, out) = Self::advance::<S>(rows, out, N, c);
                left -= N;
            }
            if N > 3 && left >= 3 {
                self.step::<S, 3, CLAMP, 0, 0>(&rows, offsets, out);
                (rows, out) = Self::advance::<S>(rows, out, 3, c);
                left -= 3;
            }
            if N > 2 && left >= 2 {
                self.step::<S, 2, CLAMP, 0, 0>(&rows, offsets, out);
                (rows, out) = Self::advance::<S>(rows, out, 2, c);
                left -= 2;
            }
            while left > 0 {
                self.step::<S, 1, CLAMP, 0, 0>(&rows, offsets, out);
                (rows, out) = Self::advance::<S>(rows, out, 1, c);
                left -= 1;
            }
        }
    }

    /// The rows and output moved on by `points` output points.
    #[inline(always)]
    fn advance<const S: usize>(
        rows: [*const f32; K],
        out: *mut f32,
        points: usize,
        c: usize,
    ) -> ([*const f32; K], *mut f32) {
        (
            rows.map(|r| r.wrapping_add(points * S * c)),
            out.wrapping_add(points * c),
        )
    }

    /// `M` adjacent output points, the first one's window starting at `rows` (its column 0),
    /// into `out` (the first point's output). The window's first `SKIP_L` and last `SKIP_R`
    /// columns lie outside the image: they are neither read nor multiplied.
    ///
    /// # Safety
    /// Every row must be readable at `ix * c .. ix * c + 4` for `SKIP_L <= ix < (M - 1) * S +
    /// K - SKIP_R`, `out` writable at `j * c .. j * c + 4` for `j < M`, and `offsets[i]` be
    /// `i * c * 4`.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn step<
        const S: usize,
        const M: usize,
        const CLAMP: bool,
        const SKIP_L: usize,
        const SKIP_R: usize,
    >(
        &self,
        rows: &[*const f32; K],
        offsets: &[usize; MAX_COLUMNS],
        out: *mut f32,
    ) {
        // Index loops over constant ranges: the optimizer unrolls them whole, so every tap
        // stays in a register (an iterator chain with `skip` was left as a loop, which put the
        // taps in memory and reloaded one per multiply-add).
        let mut acc = [self.b; M];
        for ky in TOP..K - BOTTOM {
            let (r, w) = (rows[ky], &self.w[ky]);
            for col in SKIP_L..(M - 1) * S + K - SKIP_R {
                // SAFETY: a column of this step's window inside the image (the caller's).
                let x = unsafe { V::load_at(r, offsets[col]) };
                for j in 0..M {
                    let kx = col.wrapping_sub(j * S);
                    if kx < K {
                        acc[j] = acc[j].mul_add(x, w[kx]);
                    }
                }
            }
        }
        for j in 0..M {
            // SAFETY: one of this step's points (the caller's).
            unsafe { self.finish::<CLAMP>(acc[j]).store_at(out, offsets[j]) };
        }
    }
}

/// Most columns one step of [`Block::inner`] reads: four points of a 5x5 filter at stride 2.
const MAX_COLUMNS: usize = 11;

/// `x`, through an empty `asm!` on aarch64, so that the optimizer keeps the value in a register
/// rather than folding it into the addresses derived from it.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn opaque(mut x: usize) -> usize {
    // SAFETY: an empty instruction sequence that leaves its register as it was.
    unsafe {
        std::arch::asm!("/* {0} */", inout(reg) x, options(pure, nomem, nostack, preserves_flags));
    }
    x
}

/// `x` (elsewhere the portable lanes take their addresses as they come).
#[cfg(not(target_arch = "aarch64"))]
#[inline(always)]
fn opaque(x: usize) -> usize {
    x
}
