//! The generic weighted-layer routine (every rule of [`crate::rules`] configures it) and the
//! flat fallback that keeps `conserving` exact where a denominator is zero.

use super::*;

impl Explainer {
    /// The generic weighted-layer routine: every [`Rule`] is a configuration of it.
    /// `a` is node `i`'s input as `[1, c_in, h, w]`, `r` the relevance of its output as
    /// `[1, c_out, h', w']`; returns the relevance of the input.
    ///
    /// # Errors
    /// [`Error::Internal`] if node `i` has no weights or the shapes do not fit.
    pub fn propagate_weighted(
        &mut self,
        i: usize,
        a: &ArrayD<f32>,
        r: &ArrayD<f32>,
        rule: &Rule,
        stab: Stabilizer,
        conserve: bool,
    ) -> Result<ArrayD<f32>> {
        if let Rule::Pass = rule {
            return if a.len() == r.len() {
                reshape(r.clone(), a.shape())
            } else {
                Err(Error::param(
                    "rule",
                    format!("`pass` needs equal input and output sizes, got {:?} → {:?}", a.shape(), r.shape()),
                ))
            };
        }
        let mut out = ArrayD::<f32>::zeros(a.raw_dim());
        let mut lost = ArrayD::<f32>::zeros(r.raw_dim());
        let mut any_lost = false;
        for (coef, prop) in rule.propagations() {
            let mut inputs = Vec::new();
            for t in &prop.terms {
                if let Some(x) = modify_input(a, &t.input)? {
                    inputs.push((t.clone(), x));
                }
            }
            let (shared, graph) = (&*self.shared, &*self.graph);
            let compute = || denominator(shared, graph, i, &prop, a, r.raw_dim());
            let cached;
            let computed;
            let z = if let Some(id) = self.scope {
                let key = (i, format!("{prop:?}"));
                cached = shared
                    .denominator(id, &key, false, compute)?
                    .ok_or_else(|| Error::Internal("a denominator was neither cached nor computed".into()))?;
                &*cached
            } else {
                computed = compute()?;
                &computed
            };
            let mut s = ArrayD::<f32>::zeros(r.raw_dim());
            Zip::from(&mut s).and(z).and(r).and(&mut lost).for_each(|s, &z, &r, lost| {
                if conserve && z.abs() <= ZERO_DENOMINATOR {
                    if r != 0.0 {
                        *lost += coef * r;
                        any_lost = true;
                    }
                } else {
                    *s = r / stab.apply(z);
                }
            });
            for (t, x) in inputs {
                let back = self.shared.kernel(&self.graph, i, t.weight, Direction::Transpose, false)?.run(&s)?;
                let f = coef * t.sign;
                Zip::from(&mut out).and(&*x).and(&back).for_each(|o, &x, &b| *o += f * x * b);
            }
        }
        if any_lost {
            out += &self.flat_fallback(i, a, lost)?;
        }
        Ok(out)
    }

    /// Relevance whose denominator was zero goes back flat over the positive weights of the
    /// receptive field, or over all of it where those are zero too. Nothing is dropped.
    ///
    /// # Errors
    /// [`Error::UnsupportedOp`] naming the layer if relevance reached an output whose receptive
    /// field lies wholly in the padding: it reads no input, so no input can take its relevance
    /// (only its bias made it), and dropping it would break conservation unnoticed.
    pub(super) fn flat_fallback(&mut self, i: usize, a: &ArrayD<f32>, lost: ArrayD<f32>) -> Result<ArrayD<f32>> {
        let ones = ArrayD::<f32>::ones(a.raw_dim());
        let mut out = ArrayD::<f32>::zeros(a.raw_dim());
        let mut rest = lost;
        for wm in [WeightMod::Positive, WeightMod::Ones] {
            let z = self.shared.kernel(&self.graph, i, wm, Direction::Forward, false)?.run(&ones)?;
            let mut s = ArrayD::<f32>::zeros(rest.raw_dim());
            let mut remaining = false;
            Zip::from(&mut s).and(&z).and(&mut rest).for_each(|s, &z, r| {
                if z > ZERO_DENOMINATOR {
                    *s = *r / z;
                    *r = 0.0;
                } else if *r != 0.0 {
                    remaining = true;
                }
            });
            out += &self.shared.kernel(&self.graph, i, wm, Direction::Transpose, false)?.run(&s)?;
            if !remaining {
                return Ok(out);
            }
        }
        let outputs = rest.iter().filter(|&&r| r != 0.0).count();
        Err(Error::UnsupportedOp {
            node: self.graph.nodes[i].name.clone(),
            op: self.graph.nodes[i].layer.kind().into(),
            reason: format!(
                "relevance reached {outputs} output(s) whose window lies wholly in the zero padding: they read \
                 no input, so the conserving composite has nowhere to send it"
            ),
        })
    }
}

/// Applies an input modifier (borrowing `a` where it is unchanged); `None` when the result is
/// all zeros (the term can be skipped).
pub(super) fn modify_input<'a>(a: &'a ArrayD<f32>, m: &InputMod) -> Result<Option<Cow<'a, ArrayD<f32>>>> {
    let x = match m {
        InputMod::Identity => return Ok(Some(Cow::Borrowed(a))),
        InputMod::Ones => ArrayD::ones(a.raw_dim()),
        InputMod::Positive => {
            if a.iter().all(|&v| v >= 0.0) {
                return Ok(Some(Cow::Borrowed(a)));
            }
            a.mapv(|v| v.max(0.0))
        }
        InputMod::Negative => {
            if a.iter().all(|&v| v >= 0.0) {
                return Ok(None);
            }
            a.mapv(|v| v.min(0.0))
        }
        InputMod::Channel(values) => {
            let c = a.shape()[1];
            let mut x = ArrayD::zeros(a.raw_dim());
            for (ch, mut plane) in x.axis_iter_mut(Axis(1)).enumerate() {
                let v = if values.len() == 1 { values[0] } else { *values.get(ch).unwrap_or(&0.0) };
                plane.fill(v);
            }
            if values.len() != 1 && values.len() != c {
                return Err(Error::param("low", format!("{} bounds for {c} input channels", values.len())));
            }
            x
        }
    };
    Ok(Some(Cow::Owned(x)))
}
