//! Every rule against a naive f64 closed form, and the adjoint identity of the kernels.

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use resnet_lrp::conv::{ConvGeometry, ConvKernel, Direction};
use resnet_lrp::graph::{ConvWeights, Layer, LayerGraph, Node};
use resnet_lrp::rules::Stabilizer;
use resnet_lrp::{Explainer, Rule};

/// A small deterministic generator (no dependency on the engine's code).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }
    fn array(&mut self, shape: &[usize]) -> ArrayD<f32> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || self.next())
    }
}

/// Every connection `(input index, output index, weight index)` of a convolution, by loops.
fn connections(g: &ConvGeometry) -> Vec<(usize, usize, usize)> {
    let [o, ig, kh, kw] = g.kernel_shape();
    let per_group_out = o / g.group;
    let mut v = Vec::new();
    for oc in 0..o {
        let grp = oc / per_group_out;
        for oy in 0..g.out_hw[0] {
            for ox in 0..g.out_hw[1] {
                let j = (oc * g.out_hw[0] + oy) * g.out_hw[1] + ox;
                for ci in 0..ig {
                    let c = grp * ig + ci;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let y = (oy * g.strides[0] + ky * g.dilations[0]) as isize - g.pad_begin[0] as isize;
                            let x = (ox * g.strides[1] + kx * g.dilations[1]) as isize - g.pad_begin[1] as isize;
                            if y < 0 || x < 0 || y >= g.in_hw[0] as isize || x >= g.in_hw[1] as isize {
                                continue;
                            }
                            let i = (c * g.in_hw[0] + y as usize) * g.in_hw[1] + x as usize;
                            let w = ((oc * ig + ci) * kh + ky) * kw + kx;
                            v.push((i, j, w));
                        }
                    }
                }
            }
        }
    }
    v
}

/// Naive LRP for one layer, written per rule from the textbook formulas, in f64.
fn naive(g: &ConvGeometry, w: &[f32], b: &[f32], a: &[f32], r: &[f32], rule: &Rule, eps: f64) -> Vec<f64> {
    let conns = connections(g);
    let n_in = a.len();
    let n_out = r.len();
    let plane = g.out_hw[0] * g.out_hw[1];
    let chan = |j: usize| j / plane;
    let in_plane = g.in_hw[0] * g.in_hw[1];
    let pos = |x: f64| x.max(0.0);
    let neg = |x: f64| x.min(0.0);
    // contribution z_ij and bias term for one "view" of the layer
    let run = |contrib: &dyn Fn(f64, f64, usize) -> f64, bias: &dyn Fn(f64) -> f64, stab: &dyn Fn(f64) -> f64| {
        let mut z = vec![0.0f64; n_out];
        for &(i, j, k) in &conns {
            z[j] += contrib(a[i] as f64, w[k] as f64, i);
        }
        for (j, zj) in z.iter_mut().enumerate() {
            *zj += bias(b[chan(j)] as f64);
        }
        let mut out = vec![0.0f64; n_in];
        for &(i, j, k) in &conns {
            out[i] += contrib(a[i] as f64, w[k] as f64, i) / stab(z[j]) * r[j] as f64;
        }
        out
    };
    let signed = |z: f64| z + if z >= 0.0 { eps } else { -eps };
    let zero = |_: f64| 0.0;
    match rule {
        Rule::Epsilon { epsilon } => {
            let e = *epsilon as f64;
            run(&|x, w, _| x * w, &|b| b, &|z| z + if z >= 0.0 { e } else { -e })
        }
        Rule::ZPlus => run(&|x, w, _| pos(x) * pos(w) + neg(x) * neg(w), &zero, &signed),
        Rule::ZPlusOnes => run(&|_, w, _| pos(w), &zero, &signed),
        Rule::Gamma { gamma } => {
            let gm = *gamma as f64;
            run(&|x, w, _| x * (w + gm * pos(w)), &|b| b + gm * pos(b), &signed)
        }
        Rule::AlphaBeta { alpha, beta } => {
            let p = run(&|x, w, _| pos(x) * pos(w) + neg(x) * neg(w), &pos, &signed);
            let n = run(&|x, w, _| pos(x) * neg(w) + neg(x) * pos(w), &neg, &signed);
            p.iter().zip(n).map(|(p, n)| *alpha as f64 * p - *beta as f64 * n).collect()
        }
        Rule::Pass => r.iter().map(|&v| v as f64).collect(),
        Rule::Flat => run(&|_, _, _| 1.0, &zero, &signed),
        Rule::WSquare => run(&|_, w, _| w * w, &zero, &signed),
        Rule::ZBox { low, high } => {
            let l = |i: usize| low[(i / in_plane).min(low.len() - 1)] as f64;
            let h = |i: usize| high[(i / in_plane).min(high.len() - 1)] as f64;
            run(&|x, w, i| x * w - l(i) * pos(w) - h(i) * neg(w), &zero, &signed)
        }
    }
}

fn single_layer(g: &ConvGeometry, w: ArrayD<f32>, b: Vec<f32>) -> Explainer {
    let nodes = vec![
        Node { name: "x".into(), layer: Layer::Input, inputs: vec![], shape: g.input_shape().to_vec(), source: None },
        Node {
            name: "conv".into(),
            layer: Layer::Conv { geometry: g.clone(), weights: ConvWeights::new(w), bias: b, dense: false },
            inputs: vec![0],
            shape: g.output_shape().to_vec(),
            source: None,
        },
    ];
    Explainer::new(LayerGraph { nodes, logits: 1, output: 1 })
}

/// `channels = (c_in, c_out, group)`, `window = (kernel, stride, dilation)`, `pad = (begin, end)`.
fn geometry(
    channels: (usize, usize, usize),
    hw: usize,
    window: (usize, usize, usize),
    pad: (usize, usize),
) -> ConvGeometry {
    let ((c_in, c_out, group), (k, s, d), p) = (channels, window, pad);
    let mut g = ConvGeometry {
        c_in,
        c_out,
        in_hw: [hw, hw + 1],
        out_hw: [0, 0],
        kernel: [k, k],
        strides: [s, s],
        dilations: [d, d],
        pad_begin: [p.0, p.0],
        pad_end: [p.1, p.1],
        group,
    };
    g.out_hw = [g.output_len(0, g.in_hw[0]).unwrap(), g.output_len(1, g.in_hw[1]).unwrap()];
    g
}

fn rules() -> Vec<Rule> {
    vec![
        Rule::Epsilon { epsilon: 0.0 },
        Rule::Epsilon { epsilon: 0.25 },
        Rule::ZPlus,
        Rule::ZPlusOnes,
        Rule::Gamma { gamma: 0.25 },
        Rule::AlphaBeta { alpha: 2.0, beta: 1.0 },
        Rule::AlphaBeta { alpha: 1.0, beta: 0.0 },
        Rule::Flat,
        Rule::WSquare,
        Rule::ZBox { low: vec![-1.5, -2.0, -1.0], high: vec![1.5, 2.0, 1.0] },
        Rule::Pass,
    ]
}

/// `rules` against their naive twins on layers of several geometries, with stabiliser `eps` for
/// the rules that take the composite's (the epsilon rules keep their own), to `tol` of the
/// largest relevance.
fn check_rules_against_naive(eps: f32, tol: f64, rules: &[Rule]) {
    let mut rng = Lcg(7);
    let geoms = [
        geometry((3, 4, 1), 6, (3, 1, 1), (1, 1)),
        geometry((3, 6, 1), 7, (3, 2, 1), (1, 0)),
        geometry((6, 6, 3), 5, (3, 1, 1), (1, 1)),
        geometry((3, 2, 1), 7, (2, 1, 2), (0, 1)),
        geometry((3, 5, 1), 4, (1, 1, 1), (0, 0)),
        geometry((3, 3, 1), 4, (3, 1, 1), (1, 1)),
    ];
    for g in &geoms {
        let w = rng.array(&g.kernel_shape());
        let b: Vec<f32> = (0..g.c_out).map(|_| rng.next()).collect();
        // inputs with both signs (first layer) and post-ReLU inputs
        for relu in [false, true] {
            let mut a = rng.array(&g.input_shape());
            if relu {
                a.mapv_inplace(|v| v.max(0.0));
            }
            let r = rng.array(&g.output_shape());
            let mut ex = single_layer(g, w.clone(), b.clone());
            for rule in rules.iter().cloned() {
                let applicable = match rule {
                    Rule::ZBox { .. } => g.c_in == 3,
                    Rule::Pass => g.input_shape() == g.output_shape(),
                    _ => true,
                };
                if !applicable {
                    continue;
                }
                // the epsilon rule keeps its own ε (as composites do), the others get `eps`
                let stab = match rule {
                    Rule::Epsilon { .. } => rule.default_stabilizer(),
                    _ => Stabilizer { epsilon: eps, signed: true },
                };
                let got = ex.propagate_weighted(1, &a, &r, &rule, stab, false).unwrap();
                let want = naive(
                    g,
                    w.as_slice().unwrap(),
                    &b,
                    a.as_slice().unwrap(),
                    r.as_slice().unwrap(),
                    &rule,
                    eps as f64,
                );
                let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-3);
                for (k, (g_, w_)) in got.iter().zip(&want).enumerate() {
                    let err = (*g_ as f64 - w_).abs() / scale;
                    assert!(err <= tol, "{rule:?} on {g:?} (relu={relu}, ε={eps}): element {k}: {g_} vs {w_}");
                }
            }
        }
    }
}

/// With zennit's ε = 10⁻⁶ a denominator near zero amplifies float32 rounding (z is a sum of
/// up to 54 products rounded at 6e-8, divided by as little as 10⁻⁶), hence 2e-3.
#[test]
fn every_rule_matches_its_naive_twin() {
    check_rules_against_naive(1e-6, 2e-3, &rules());
}

/// With ε = 0.1 no denominator is below 0.1 in magnitude, so float32 rounding stays small
/// (measured worst 1.05e-6 of max, the epsilon rule) and 1e-5 holds with a margin of 10; where ε
/// goes is now visible: the same rules with ε added unsigned instead of signed differ from their
/// twins by up to 30× max wherever z can be negative (measured), and ε left out of a
/// denominator moves every output by ≈ 0.1 / |z|.
#[test]
fn every_rule_matches_its_naive_twin_with_a_large_epsilon() {
    // the epsilon rules keep their own ε: LRP-0 (ε = 0) is replaced by ε = 0.1
    let mut rules: Vec<Rule> = rules().into_iter().filter(|r| !matches!(r, Rule::Epsilon { .. })).collect();
    rules.push(Rule::Epsilon { epsilon: 0.1 });
    check_rules_against_naive(0.1, 1e-5, &rules);
}

/// Naive `conserving` z⁺ for one layer, in f64, from the formulas: where `z_j = Σ a⁺w⁺ + a⁻w⁻`
/// is non-zero the z⁺ rule; where it is zero, `r_j` in proportion to the positive weights of
/// output `j`'s connections, and where those are all zero too, evenly over its connections
/// (padding excluded: [`connections`] lists only in-bounds inputs).
fn naive_conserving_zplus(g: &ConvGeometry, w: &[f32], a: &[f32], r: &[f32]) -> Vec<f64> {
    let conns = connections(g);
    let contrib = |i: usize, k: usize| {
        let (x, w) = (a[i] as f64, w[k] as f64);
        x.max(0.0) * w.max(0.0) + x.min(0.0) * w.min(0.0)
    };
    let (mut z, mut wplus, mut count) = (vec![0.0f64; r.len()], vec![0.0f64; r.len()], vec![0.0f64; r.len()]);
    for &(i, j, k) in &conns {
        z[j] += contrib(i, k);
        wplus[j] += (w[k] as f64).max(0.0);
        count[j] += 1.0;
    }
    let mut out = vec![0.0f64; a.len()];
    for &(i, j, k) in &conns {
        let rj = r[j] as f64;
        out[i] += if z[j] != 0.0 {
            contrib(i, k) / z[j] * rj
        } else if wplus[j] > 0.0 {
            (w[k] as f64).max(0.0) / wplus[j] * rj
        } else {
            rj / count[j]
        };
    }
    out
}

/// The flat fallback against its naive twin on a layer that reaches all three cases: outputs
/// with z > 0 (the z⁺ rule), outputs with z = 0 over zero inputs (first stage, over W⁺) and an
/// output channel whose weights are all ≤ 0, so that W⁺ ≡ 0 and, the input being ≥ 0, z = 0
/// everywhere: its relevance reaches the second stage (weights replaced by ones).
#[test]
fn flat_fallback_matches_its_naive_twin() {
    let g = geometry((3, 4, 1), 6, (3, 2, 1), (1, 1));
    let mut rng = Lcg(11);
    let mut w = rng.array(&g.kernel_shape());
    w.index_axis_mut(ndarray::Axis(0), 2).mapv_inplace(|v| -v.abs());
    // post-ReLU input, zero on its left half: outputs whose window lies there have z = 0
    let mut a = rng.array(&g.input_shape()).mapv(|v| v.max(0.0));
    a.slice_axis_mut(ndarray::Axis(3), ndarray::Slice::from(..4)).fill(0.0);
    let r = rng.array(&g.output_shape()).mapv(f32::abs);
    let mut ex = single_layer(&g, w.clone(), vec![0.0; g.c_out]);
    let conserving = Stabilizer { epsilon: 0.0, signed: false };
    let got = ex.propagate_weighted(1, &a, &r, &Rule::ZPlus, conserving, true).unwrap();
    let want = naive_conserving_zplus(&g, w.as_slice().unwrap(), a.as_slice().unwrap(), r.as_slice().unwrap());
    // sums of at most 3·3·3 = 27 terms in f32: ≈ 1e-6 relative; a wrong stage or a wrong
    // receptive field (padding counted) moves whole outputs' shares by ≥ 1e-2
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (k, (g_, w_)) in got.iter().zip(&want).enumerate() {
        assert!((*g_ as f64 - w_).abs() <= 1e-5 * scale, "element {k}: {g_} vs {w_}");
    }
    // the naive twin conserves by construction; the engine must too, and all three cases occur
    let (si, so) = (got.sum() as f64, r.sum() as f64);
    assert!((si - so).abs() <= 1e-5 * so, "{si} vs {so}");
    let z = |j: usize| -> f64 {
        connections(&g)
            .iter()
            .filter(|c| c.1 == j)
            .map(|&(i, _, k)| a.as_slice().unwrap()[i] as f64 * w.as_slice().unwrap()[k].max(0.0) as f64)
            .sum()
    };
    let plane = g.out_hw[0] * g.out_hw[1];
    assert!((0..r.len()).any(|j| j / plane != 2 && z(j) > 0.0), "no output with z > 0");
    assert!((0..r.len()).any(|j| j / plane != 2 && z(j) == 0.0), "no output for the first stage");
}

/// A 1×1 convolution with padding 1: its border outputs read nothing but padding. Relevance that
/// reaches them has no input to go to, and `conserving` must say so (naming the layer) rather
/// than drop it; relevance elsewhere is unaffected.
#[test]
fn relevance_at_outputs_that_read_no_input_is_an_error_naming_the_layer() {
    let g = geometry((2, 3, 1), 4, (1, 1, 1), (1, 1));
    let mut rng = Lcg(5);
    let a = rng.array(&g.input_shape()).mapv(|v| v.max(0.0));
    let mut r = rng.array(&g.output_shape()).mapv(f32::abs);
    let mut ex = single_layer(&g, rng.array(&g.kernel_shape()), vec![0.0; g.c_out]);
    let conserving = Stabilizer { epsilon: 0.0, signed: false };
    let e = ex.propagate_weighted(1, &a, &r, &Rule::ZPlus, conserving, true).unwrap_err();
    assert!(matches!(&e, resnet_lrp::Error::UnsupportedOp { node, .. } if node == "conv"), "{e}");
    assert!(e.to_string().contains("padding"), "{e}");
    // no relevance on the border: nothing to report, and everything arrives
    let (h, w) = (g.out_hw[0], g.out_hw[1]);
    for ((_, _, y, x), v) in r.view_mut().into_dimensionality::<ndarray::Ix4>().unwrap().indexed_iter_mut() {
        if y == 0 || x == 0 || y == h - 1 || x == w - 1 {
            *v = 0.0;
        }
    }
    let out = ex.propagate_weighted(1, &a, &r, &Rule::ZPlus, conserving, true).unwrap();
    assert!((out.sum() - r.sum()).abs() <= 1e-5 * r.sum(), "{} vs {}", out.sum(), r.sum());
}

/// One threshold for "the denominator is zero" in every layer kind: a window (or receptive
/// field) whose sum is 10⁻³⁰, below [`resnet_lrp::rules::ZERO_DENOMINATOR`], spreads its
/// relevance evenly in a pool and in a convolution alike (a pool used to test `sum == 0.0`
/// only, and sent it all to the one tiny input).
#[test]
fn a_denominator_below_the_threshold_counts_as_zero_in_pools_and_convolutions() {
    let tiny = 1e-30f32;
    assert!(tiny <= resnet_lrp::rules::ZERO_DENOMINATOR);
    let pool = resnet_lrp::pool::PoolGeometry {
        kernel: [2, 2],
        strides: [2, 2],
        pad_begin: [0, 0],
        pad_end: [0, 0],
        in_hw: [2, 2],
        out_hw: [1, 1],
    };
    let a = ndarray::Array4::from_shape_vec((1, 1, 2, 2), vec![tiny, 0.0, 0.0, 0.0]).unwrap();
    let r = ndarray::Array4::from_elem((1, 1, 1, 1), 1.0f32);
    let out = pool.proportional(a.view(), r.view(), 0.0, true);
    assert_eq!(out.iter().copied().collect::<Vec<_>>(), vec![0.25; 4]);
    // a 1×1 convolution, two channels in, weights 1, on a 1×2 image: the first output reads
    // (10⁻³⁰, 0), so z = 10⁻³⁰, and must spread evenly too (not all to the tiny input)
    let g = geometry((2, 1, 1), 1, (1, 1, 1), (0, 0));
    let mut ex = single_layer(&g, ArrayD::from_elem(IxDyn(&g.kernel_shape()), 1.0), vec![0.0]);
    let mut a = ArrayD::zeros(IxDyn(&g.input_shape()));
    a[[0, 0, 0, 0]] = tiny;
    let r = ArrayD::from_elem(IxDyn(&g.output_shape()), 1.0f32);
    let conserving = Stabilizer { epsilon: 0.0, signed: false };
    let out = ex.propagate_weighted(1, &a, &r, &Rule::ZPlus, conserving, true).unwrap();
    assert_eq!(out.iter().copied().collect::<Vec<_>>(), vec![0.5; 4]);
}

#[test]
fn invalid_rule_parameters_are_named() {
    let e = Rule::AlphaBeta { alpha: 2.0, beta: 2.0 }.validate().unwrap_err().to_string();
    assert!(e.contains("alpha − beta must be 1"), "{e}");
    let e = Rule::Epsilon { epsilon: -1.0 }.validate().unwrap_err().to_string();
    assert!(e.contains("epsilon"), "{e}");
    let e = resnet_lrp::Composite::by_name("nope", (vec![0.0], vec![1.0])).unwrap_err().to_string();
    assert!(e.contains("unknown composite `nope`") && e.contains("conserving"), "{e}");
    let e = resnet_lrp::Variant::from_name("skip").unwrap_err().to_string();
    assert!(e.contains("flows_skip"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// ⟨conv(x), y⟩ = ⟨x, convᵀ(y)⟩ for random geometries: the back-projection is the adjoint.
    #[test]
    fn transposed_convolution_is_the_adjoint(
        c in 1usize..4, o in 1usize..4, hw in 3usize..9, k in 1usize..4, s in 1usize..3,
        pb in 0usize..2, pe in 0usize..2, d in 1usize..3, grouped in any::<bool>(), seed in any::<u64>()
    ) {
        let group = if grouped { c } else { 1 };
        let o = if grouped { c * o } else { o };
        let mut g = ConvGeometry {
            c_in: c, c_out: o, in_hw: [hw, hw + 2], out_hw: [0, 0], kernel: [k, k], strides: [s, s],
            dilations: [d, d], pad_begin: [pb, pb], pad_end: [pe, pe], group,
        };
        let (Some(h), Some(w)) = (g.output_len(0, g.in_hw[0]), g.output_len(1, g.in_hw[1])) else { return Ok(()) };
        g.out_hw = [h, w];
        let mut rng = Lcg(seed);
        let wts = rng.array(&g.kernel_shape());
        let x = rng.array(&g.input_shape());
        let y = rng.array(&g.output_shape());
        let fwd = ConvKernel::new(&g, Direction::Forward, wts.clone(), None).unwrap();
        let bwd = ConvKernel::new(&g, Direction::Transpose, wts.clone(), None).unwrap();
        let cx = fwd.run(&x).unwrap();
        let cty = bwd.run(&y).unwrap();
        let lhs: f64 = cx.iter().zip(y.iter()).map(|(a, b)| *a as f64 * *b as f64).sum();
        let rhs: f64 = x.iter().zip(cty.iter()).map(|(a, b)| *a as f64 * *b as f64).sum();
        let scale: f64 = cx.iter().map(|v| v.abs() as f64).sum::<f64>().max(1.0);
        prop_assert!((lhs - rhs).abs() <= 1e-4 * scale, "{} vs {} for {:?}", lhs, rhs, g);
    }
}

#[test]
fn rule_parameters_reach_the_rules_they_name() {
    use resnet_lrp::{Composite, Error, Params};
    let bounds = || (vec![-2.0], vec![2.0]);
    let eps = Composite::by_name("epsilon_plus", bounds())
        .unwrap()
        .with_params(&Params { epsilon: Some(0.25), ..Params::default() })
        .unwrap();
    assert_eq!(eps.dense, Rule::Epsilon { epsilon: 0.25 });
    assert_eq!(eps.stabilizer.epsilon, 0.25);
    let ab = Composite::by_name("epsilon_alpha2_beta1", bounds())
        .unwrap()
        .with_params(&Params { alpha: Some(3.0), ..Params::default() })
        .unwrap();
    assert_eq!(ab.conv, Rule::AlphaBeta { alpha: 3.0, beta: 2.0 });
    let ab = Composite::by_name("epsilon_alpha2_beta1", bounds())
        .unwrap()
        .with_params(&Params { beta: Some(0.0), ..Params::default() })
        .unwrap();
    assert_eq!(ab.first, Rule::AlphaBeta { alpha: 1.0, beta: 0.0 });
    let gamma = Composite::by_name("epsilon_gamma_box", bounds())
        .unwrap()
        .with_params(&Params { gamma: Some(0.5), ..Params::default() })
        .unwrap();
    assert_eq!(gamma.conv, Rule::Gamma { gamma: 0.5 });
    // no silent no-ops: a parameter the composite has no rule for is an error
    for (name, p) in [
        ("gamma", Params { gamma: Some(0.5), ..Params::default() }),
        ("alpha", Params { alpha: Some(2.0), ..Params::default() }),
        ("beta", Params { beta: Some(1.0), ..Params::default() }),
    ] {
        let e = Composite::by_name("conserving", bounds()).unwrap().with_params(&p).unwrap_err();
        assert!(matches!(&e, Error::InvalidParam { name: n, .. } if n == name), "{name}: {e}");
    }
}
