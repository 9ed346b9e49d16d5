//! Four f32 lanes, and the zeros a padded row reads: what both project kernels compute with.

/// Four f32 lanes: NEON's `float32x4_t` on aarch64, plain arrays elsewhere.
pub(super) trait Lanes: Copy + Send + Sync {
    /// # Safety
    /// `p` must be readable for four f32.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p` must be writable for four f32.
    unsafe fn store(self, p: *mut f32);
    fn splat(x: f32) -> Self;
    /// `self + a * b`, per lane.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// `min(max(self, lo), hi)`, per lane.
    fn clamp(self, lo: Self, hi: Self) -> Self;
    /// `load(base + offset bytes)`, the address formed by the load instruction itself (base
    /// plus offset register), so no address is kept per offset.
    ///
    /// # Safety
    /// As [`Lanes::load`], at that address.
    unsafe fn load_at(base: *const f32, offset: usize) -> Self;
    /// `store(base + offset bytes)`, the address formed by the store.
    ///
    /// # Safety
    /// As [`Lanes::store`], at that address.
    unsafe fn store_at(self, base: *mut f32, offset: usize);
    /// `[0, a0, a1, a2]`: the lanes moved up one, a zero shifted in at the bottom.
    fn shift_in_low(self) -> Self;
    /// `[a1, a2, a3, 0]`: the lanes moved down one, a zero shifted in at the top.
    fn shift_in_high(self) -> Self;
}

#[cfg(target_arch = "aarch64")]
impl Lanes for std::arch::aarch64::float32x4_t {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees four readable f32 at `p`; vld1q has no alignment need.
        unsafe { std::arch::aarch64::vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees four writable f32 at `p`; vst1q has no alignment need.
        unsafe { std::arch::aarch64::vst1q_f32(p, self) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline (every aarch64 target enables it).
        unsafe { std::arch::aarch64::vdupq_n_f32(x) }
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { std::arch::aarch64::vfmaq_f32(self, a, b) }
    }
    #[inline(always)]
    fn clamp(self, lo: Self, hi: Self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { std::arch::aarch64::vminq_f32(std::arch::aarch64::vmaxq_f32(self, lo), hi) }
    }
    #[inline(always)]
    unsafe fn load_at(base: *const f32, offset: usize) -> Self {
        let v: Self;
        // SAFETY: the caller guarantees four readable f32 at `base + offset` bytes; `ldr q` has
        // no alignment need and reads nothing else.
        unsafe {
            std::arch::asm!(
                "ldr {v:q}, [{base}, {offset}]",
                v = out(vreg) v,
                base = in(reg) base,
                offset = in(reg) offset,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        v
    }
    #[inline(always)]
    unsafe fn store_at(self, base: *mut f32, offset: usize) {
        // SAFETY: the caller guarantees four writable f32 at `base + offset` bytes; `str q`
        // has no alignment need and writes nothing else.
        unsafe {
            std::arch::asm!(
                "str {v:q}, [{base}, {offset}]",
                v = in(vreg) self,
                base = in(reg) base,
                offset = in(reg) offset,
                options(nostack, preserves_flags),
            );
        }
    }
    #[inline(always)]
    fn shift_in_low(self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { std::arch::aarch64::vextq_f32::<3>(std::arch::aarch64::vdupq_n_f32(0.0), self) }
    }
    #[inline(always)]
    fn shift_in_high(self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { std::arch::aarch64::vextq_f32::<1>(self, std::arch::aarch64::vdupq_n_f32(0.0)) }
    }
}

/// The portable lanes, for other architectures.
#[derive(Clone, Copy)]
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
pub(super) struct Portable([f32; 4]);

impl Lanes for Portable {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees four readable f32 at `p`; read_unaligned needs no
        // alignment.
        Portable(unsafe { std::ptr::read_unaligned(p as *const [f32; 4]) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees four writable f32 at `p`.
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 4], self.0) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Portable([x; 4])
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        Portable(std::array::from_fn(|i| self.0[i] + a.0[i] * b.0[i]))
    }
    #[inline(always)]
    fn clamp(self, lo: Self, hi: Self) -> Self {
        Portable(std::array::from_fn(|i| self.0[i].max(lo.0[i]).min(hi.0[i])))
    }
    #[inline(always)]
    unsafe fn load_at(base: *const f32, offset: usize) -> Self {
        // SAFETY: the caller's (`base` itself may lie outside the buffer).
        unsafe { Self::load(base.wrapping_byte_add(offset)) }
    }
    #[inline(always)]
    unsafe fn store_at(self, base: *mut f32, offset: usize) {
        // SAFETY: the caller's.
        unsafe { self.store(base.wrapping_byte_add(offset)) }
    }
    #[inline(always)]
    fn shift_in_low(self) -> Self {
        let a = self.0;
        Portable([0.0, a[0], a[1], a[2]])
    }
    #[inline(always)]
    fn shift_in_high(self) -> Self {
        let a = self.0;
        Portable([a[1], a[2], a[3], 0.0])
    }
}

/// How many zeros [`zeros`] shares: an input row of 64 Ki values (a 112-wide row of 585
/// channels), 256 KiB allocated once.
const SHARED_ZEROS: usize = 1 << 16;

/// `len` zeros: the shared ones (allocated once per process, never written) when they are
/// enough, else a fresh allocation. Padding rows are read often and are short, and a zeroed
/// allocation per call is not free: musl's `calloc` scans the memory it returns (the operator's
/// first version lost 27 M instructions per Lite0 inference there).
pub(super) fn zeros(len: usize) -> std::borrow::Cow<'static, [f32]> {
    static SHARED: std::sync::OnceLock<Box<[f32]>> = std::sync::OnceLock::new();
    if len <= SHARED_ZEROS {
        std::borrow::Cow::Borrowed(&SHARED.get_or_init(|| vec![0f32; SHARED_ZEROS].into())[..len])
    } else {
        std::borrow::Cow::Owned(vec![0f32; len])
    }
}
