use tract_onnx::tract_core::ops::cnn::Conv;

use super::*;

/// Where an element sits: channel-last (input `[N, H, W, C]`, weights `[k, k, C]`, this
/// module's) or channel-first (`[N, C, H, W]`, weights `[C, k, k]`, `planar`'s).
#[derive(Debug, Clone, Copy)]
pub(in crate::runtime::kernels) enum Layout {
    ChannelLast,
    ChannelFirst,
}

impl Layout {
    /// The index of image `i`, channel `ch` of `c`, row `y` of `h`, column `x` of `w`.
    fn at(
        self,
        i: usize,
        ch: usize,
        y: usize,
        x: usize,
        (c, h, w): (usize, usize, usize),
    ) -> usize {
        match self {
            Layout::ChannelLast => ((i * h + y) * w + x) * c + ch,
            Layout::ChannelFirst => ((i * c + ch) * h + y) * w + x,
        }
    }
}

/// The definition, element by element, from the unpadded input.
pub(in crate::runtime::kernels) fn reference(
    g: &Geometry,
    c: usize,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    clamp: Option<(f32, f32)>,
    layout: Layout,
) -> Vec<f32> {
    let n = x.len() / (g.h * g.w * c);
    let mut out = vec![0f32; n * g.oh * g.ow * c];
    for i in 0..n {
        for ch in 0..c {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut sum = b[ch];
                    for ky in 0..g.k {
                        for kx in 0..g.k {
                            let iy = (oy * g.s + ky) as isize - g.pad_top as isize;
                            let ix = (ox * g.s + kx) as isize - g.pad_left as isize;
                            if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                continue;
                            }
                            let xi = layout.at(i, ch, iy as usize, ix as usize, (c, g.h, g.w));
                            sum += w[layout.at(0, ch, ky, kx, (c, g.k, g.k))] * x[xi];
                        }
                    }
                    if let Some((lo, hi)) = clamp {
                        sum = sum.max(lo).min(hi);
                    }
                    out[layout.at(i, ch, oy, ox, (c, g.oh, g.ow))] = sum;
                }
            }
        }
    }
    out
}

fn geometry(
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    pads: (usize, usize, usize, usize),
) -> Geometry {
    let (pt, pb, pl, pr) = pads;
    Geometry {
        k,
        s,
        pad_top: pt,
        pad_left: pl,
        h,
        w,
        oh: (h + pt + pb - k) / s + 1,
        ow: (w + pl + pr - k) / s + 1,
        channels_first: false,
    }
}

/// Deterministic input, weights and bias for `n` images of `c` channels (the same
/// counts in either layout).
pub(in crate::runtime::kernels) fn case(
    g: &Geometry,
    c: usize,
    n: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = (0..n * g.h * g.w * c)
        .map(|i| (i as f32 * 0.137).sin() * 4.0)
        .collect();
    let w = (0..g.k * g.k * c)
        .map(|i| (i as f32 * 0.091).cos() * 0.8)
        .collect();
    let b = (0..c).map(|i| i as f32 * 0.05 - 0.7).collect();
    (x, w, b)
}

/// `got` equals `want` within float rounding, element by element.
pub(in crate::runtime::kernels) fn assert_matches(
    g: &Geometry,
    c: usize,
    got: &[f32],
    want: &[f32],
) {
    for (i, (a, e)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
            "{g:?} c={c} at {i}: {a} vs {e}"
        );
    }
}

fn check(g: Geometry, c: usize, n: usize, clamp: Option<(f32, f32)>) {
    let (x, w, b) = case(&g, c, n);
    let want = reference(&g, c, &x, &w, &b, clamp, Layout::ChannelLast);
    let mut got = vec![f32::NAN; want.len()];
    let packed = pack_weights(g.k, c, &w).unwrap();
    run(&g, c, &x, &packed, &b, clamp, &mut got).unwrap();
    assert_matches(&g, c, &got, &want);
}

#[test]
fn matches_the_definition() {
    let relu6 = Some((0.0, 6.0));
    for (k, s, pads) in [
        (3, 1, (1, 1, 1, 1)),
        (3, 2, (0, 1, 0, 1)),
        (3, 2, (1, 1, 1, 1)),
        (5, 1, (2, 2, 2, 2)),
        (5, 2, (1, 2, 1, 2)),
        (5, 2, (2, 2, 2, 2)),
        (3, 1, (0, 0, 0, 0)),
    ] {
        for (h, w) in [(1, 1), (2, 3), (7, 7), (14, 9), (17, 16)] {
            if h + pads.0 + pads.1 < k || w + pads.2 + pads.3 < k {
                continue;
            }
            let g = geometry(h, w, k, s, pads);
            for c in [4, 8, 20, 12] {
                check(g, c, 1, relu6);
                check(g, c, 1, None);
            }
        }
    }
    check(geometry(9, 9, 3, 1, (1, 1, 1, 1)), 12, 3, relu6);
}

#[test]
fn large_images() {
    check(
        geometry(40, 60, 5, 2, (1, 2, 1, 2)),
        128,
        1,
        Some((0.0, 6.0)),
    );
    check(
        geometry(60, 60, 3, 1, (1, 1, 1, 1)),
        96,
        1,
        Some((-1.0, 1.0)),
    );
}

#[test]
fn threads_split_rows_alike() {
    let pool = tract_linalg::multithread::Executor::multithread(3);
    tract_linalg::multithread::multithread_tract_scope(pool, || {
        check(
            geometry(56, 56, 3, 1, (1, 1, 1, 1)),
            48,
            1,
            Some((0.0, 6.0)),
        );
        check(
            geometry(28, 28, 5, 2, (1, 2, 1, 2)),
            36,
            1,
            Some((0.0, 6.0)),
        );
    });
}

/// tract's own `DepthWiseConv` + ReLU6 against the substituted graph, on the same input,
/// channel-last (NHWC) or, straight behind the model's input as EfficientNet's first one
/// is behind the stem, where tract keeps it, channel-first (NCHW).
fn against_tract(h: usize, w: usize, c: usize, k: usize, s: usize, nchw: bool) {
    use tract_onnx::tract_core::ops::cnn::{KernelFormat, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;
    let x: Vec<f32> = (0..h * w * c)
        .map(|i| (i as f32 * 0.37).sin() * 5.0)
        .collect();
    let kernel: Vec<f32> = (0..c * k * k)
        .map(|i| (i as f32 * 0.191).cos() * 0.6)
        .collect();
    let bias: Vec<f32> = (0..c).map(|i| i as f32 * 0.03 - 0.4).collect();
    let shape = if nchw { [1, c, h, w] } else { [1, h, w, c] };
    let mut model = TypedModel::default();
    let xv = model.add_source("x", f32::fact(shape)).unwrap();
    let kv = model
        .add_const("k", tensor1(&kernel).into_shape(&[c, 1, k, k]).unwrap())
        .unwrap();
    let bv = model.add_const("b", tensor1(&bias)).unwrap();
    let pool_spec = PoolSpec {
        data_format: if nchw {
            DataFormat::NCHW
        } else {
            DataFormat::NHWC
        },
        kernel_shape: tvec!(k, k),
        padding: PaddingSpec::SameUpper,
        dilations: None,
        strides: Some(tvec!(s, s)),
        input_channels: c,
        output_channels: c,
    };
    let conv = Conv {
        pool_spec,
        kernel_fmt: KernelFormat::OIHW,
        group: c,
        q_params: None,
    };
    let y = model.wire_node("dw", conv, &[xv, kv, bv]).unwrap();
    let zero = model.add_const("zero", tensor0(0f32)).unwrap();
    let six = model.add_const("six", tensor0(6f32)).unwrap();
    use tract_onnx::tract_core::ops::change_axes::wire_with_rank_broadcast;
    let y = wire_with_rank_broadcast(
        "max",
        &mut model,
        tract_onnx::tract_core::ops::math::max(),
        &[y[0], zero],
    )
    .unwrap();
    let y = wire_with_rank_broadcast(
        "min",
        &mut model,
        tract_onnx::tract_core::ops::math::min(),
        &[y[0], six],
    )
    .unwrap();
    model.select_output_outlets(&y).unwrap();
    let typed = model.into_decluttered().unwrap();
    let convs = record(&typed);
    assert_eq!(convs.len(), 1, "{convs:?}");
    assert!(
        convs.values().all(|g| g.channels_first == nchw),
        "{convs:?}"
    );
    let tract_plan = typed
        .clone()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let mut ours = typed.into_optimized().unwrap();
    assert_eq!(substitute(&mut ours, &convs).unwrap(), 1);
    let names: Vec<String> = ours
        .nodes()
        .iter()
        .map(|n| n.op().name().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n == "ProjectDepthwiseClamp"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n == "DepthWiseConv" || n.starts_with("OptBinChain")),
        "{names:?}"
    );
    let ours = ours.into_runnable().unwrap();
    let input = tensor1(&x).into_shape(&shape).unwrap();
    let want = tract_plan.run(tvec!(input.clone().into_tvalue())).unwrap();
    let got = ours.run(tvec!(input.into_tvalue())).unwrap();
    let (want, got) = (
        want[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap(),
        got[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap(),
    );
    assert_eq!(want.len(), got.len());
    let worst = want
        .iter()
        .zip(got)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-5, "k={k} s={s} {h}x{w}x{c}: max |diff| {worst}");
}

/// EfficientNet-Lite0's depthwise convolutions in order (input side, channels, kernel,
/// stride, padding before and after), the first channel-first and the others channel-last.
const LITE0: [(usize, usize, usize, usize, usize, usize); 12] = [
    (112, 32, 3, 1, 1, 1),
    (112, 96, 3, 2, 0, 1),
    (56, 144, 3, 1, 1, 1),
    (56, 144, 5, 2, 1, 2),
    (28, 240, 5, 1, 2, 2),
    (28, 240, 3, 2, 0, 1),
    (14, 480, 3, 1, 1, 1),
    (14, 480, 5, 1, 2, 2),
    (14, 672, 5, 1, 2, 2),
    (14, 672, 5, 2, 1, 2),
    (7, 1152, 5, 1, 2, 2),
    (7, 1152, 3, 1, 1, 1),
];

/// One of [`LITE0`]'s convolutions (index `CASCADE_DW_LAYER`) run `CASCADE_DW_REPS` times,
/// with ReLU6: a workload for per-layer instruction counts, taken as the difference of two
/// runs at different repetitions under `qemu-aarch64 -cpu cortex-a72` with the counting
/// plugin (`--ignored --exact --test-threads 1`).
#[test]
#[ignore = "a workload for instruction counting, not a check"]
fn lite0_layer_workload() {
    let var = |name: &str| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (side, c, k, s, before, after) = LITE0[var("CASCADE_DW_LAYER")];
    let mut g = geometry(side, side, k, s, (before, after, before, after));
    g.channels_first = var("CASCADE_DW_LAYER") == 0;
    let x: Vec<f32> = (0..side * side * c).map(|i| (i % 7) as f32 - 3.0).collect();
    let w: Vec<f32> = (0..k * k * c).map(|i| (i % 5) as f32 * 0.1).collect();
    let b = vec![0.5f32; c];
    let weights = match g.channels_first {
        true => w,
        false => pack_weights(k, c, &w).unwrap(),
    };
    let kernel = match g.channels_first {
        true => super::super::planar::run,
        false => run,
    };
    let mut y = vec![0f32; g.oh * g.ow * c];
    for _ in 0..var("CASCADE_DW_REPS") {
        kernel(&g, c, &x, &weights, &b, Some((0.0, 6.0)), &mut y).unwrap();
    }
    assert!(y.iter().all(|v| (0.0..=6.0).contains(v)));
}

#[test]
fn matches_tracts_depthwise_and_relu6() {
    against_tract(12, 12, 16, 3, 1, false);
    against_tract(13, 12, 24, 3, 2, false);
    against_tract(9, 9, 32, 5, 1, false);
    against_tract(14, 14, 20, 5, 2, false);
    against_tract(12, 12, 16, 3, 1, true);
    against_tract(9, 11, 6, 3, 1, true);
}
