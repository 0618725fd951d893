//! An exponential moving average of a model's weights (`--ema DECAY`), kept beside the live
//! weights: after every step, `ema = decay · ema + (1 − decay) · weights`, for every
//! parameter and running statistic, in the order burn visits them.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use makemore_model::Model;

/// The averaged weights of a run, on the inference backend.
#[derive(Debug)]
pub(crate) struct Ema<B: Backend> {
    decay: f64,
    model: Model<B>,
}

impl<B: Backend> Ema<B> {
    /// An average that starts at `model` (which must not share running statistics with the
    /// live model: `AutodiffModule::valid` and `Checkpoint::load_model` give such copies).
    pub(crate) fn new(model: Model<B>, decay: f64) -> Self {
        Self { decay, model }
    }

    /// The averaged weights.
    pub(crate) fn model(&self) -> &Model<B> {
        &self.model
    }

    /// Moves the average one step towards `live`'s weights.
    pub(crate) fn update(&mut self, live: &Model<B>) {
        let mut collect = Collect(Vec::new());
        live.visit(&mut collect);
        let mut blend = Blend {
            live: collect.0.into_iter(),
            keep: self.decay,
        };
        // `map` consumes the module (a clone shares the tensors, not copies them).
        self.model = self.model.clone().map(&mut blend);
        debug_assert!(
            blend.live.next().is_none(),
            "the EMA and the live model differ"
        );
    }
}

/// Every float tensor of a module, flattened, in visiting order.
struct Collect<B: Backend>(Vec<Tensor<B, 1>>);

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.val().flatten(0, D - 1));
    }
}

/// Blends each float tensor of a module with the next of `live`.
struct Blend<B: Backend, I: Iterator<Item = Tensor<B, 1>>> {
    live: I,
    keep: f64,
}

impl<B: Backend, I: Iterator<Item = Tensor<B, 1>>> ModuleMapper<B> for Blend<B, I> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let live = self
            .live
            .next()
            .expect("the EMA has the live model's structure");
        let keep = self.keep;
        param.map(|avg| {
            let shape = avg.shape();
            avg.mul_scalar(keep)
                .add(live.reshape(shape).mul_scalar(1.0 - keep))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use makemore_model::{ModelConfig, NormKind};

    fn values<B: Backend>(model: &Model<B>) -> Vec<f32> {
        let mut c = Collect(Vec::new());
        model.visit(&mut c);
        c.0.into_iter()
            .flat_map(|t| t.into_data().to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn each_update_moves_every_weight_and_running_statistic_by_one_minus_decay() {
        type B = NdArray<f32>;
        let device = Default::default();
        let config = ModelConfig::new(27, 3)
            .with_n_hidden(8)
            .with_norm(NormKind::Batch);
        let start = config.clone().with_init_seed(1).init::<B>(&device);
        let live = config.with_init_seed(2).init::<B>(&device);
        let (a, b) = (values(&start), values(&live));
        assert!(
            a.len() > 27 * 10 + 8 * 2,
            "running statistics are visited too"
        );
        let mut ema = Ema::new(start, 0.75);
        ema.update(&live);
        let once = values(ema.model());
        for ((&x, &y), &e) in a.iter().zip(&b).zip(&once) {
            let want = x * 0.75 + y * 0.25;
            assert!(
                (e - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{e} vs {want}"
            );
        }
        // Again towards the same weights: 0.75 of the distance that was left remains.
        ema.update(&live);
        for ((&e1, &e2), &y) in once.iter().zip(&values(ema.model())).zip(&b) {
            assert!(((e2 - y) - 0.75 * (e1 - y)).abs() <= 1e-5, "{e2} {e1} {y}");
        }
        // The live model is unchanged (no shared running statistics).
        assert_eq!(values(&live), b);
    }
}
