//! The optimisers a run can use, behind one type so the trainer has one code path.

use std::path::Path;

use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamWState, AdaptiveMomentumState, GradientsParams, SimpleOptimizer};
use burn::optim::{Optimizer, Sgd, SgdConfig};
use burn::prelude::*;
use makemore_model::{AdamWStep, FusedAutodiff, FusedOps, Model};

use crate::checkpoint::{record_bytes, record_from_bytes};
use crate::{OptimizerKind, TrainError};

/// burn's `AdamW` (defaults β₁ 0.9, β₂ 0.999, ε 1e-5) with its update in one pass per
/// parameter ([`OptimizerOps::fused_adamw`](makemore_model::OptimizerOps::fused_adamw)): the same bits as burn's, and the same state type,
/// so `optimizer.mpk` files are unchanged.
#[derive(Debug, Clone)]
pub(crate) struct FusedAdamW {
    weight_decay: f32,
    beta_2: f32,
    epsilon: f32,
}

impl<B: FusedOps> SimpleOptimizer<B> for FusedAdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let (time, moments) = match state {
            Some(s) => (
                s.momentum.time + 1,
                Some((s.momentum.moment_1, s.momentum.moment_2)),
            ),
            None => (1, None),
        };
        let step = AdamWStep {
            lr,
            time: time as u64,
            beta_1: 0.9,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
        };
        let [w, m, v] = B::fused_adamw(tensor, grad, moments, step);
        let momentum = AdaptiveMomentumState::new(time, m, v);
        (w, Some(AdamWState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

/// SGD or AdamW over an [`Model`].
pub(crate) enum TrainOptimizer<B: FusedAutodiff> {
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, Model<B>, B>),
    AdamW(OptimizerAdaptor<FusedAdamW, Model<B>, B>),
}

impl<B: FusedAutodiff> TrainOptimizer<B> {
    pub(crate) fn new(kind: OptimizerKind) -> Self {
        match kind {
            OptimizerKind::Sgd => Self::Sgd(SgdConfig::new().init()),
            OptimizerKind::Adamw {
                weight_decay,
                beta_2,
                epsilon,
            } => Self::AdamW(OptimizerAdaptor::from(FusedAdamW {
                weight_decay: weight_decay as f32,
                beta_2: beta_2 as f32,
                epsilon: epsilon as f32,
            })),
        }
    }

    pub(crate) fn step(&mut self, lr: f64, model: Model<B>, grads: GradientsParams) -> Model<B> {
        match self {
            Self::Sgd(o) => o.step(lr, model, grads),
            Self::AdamW(o) => o.step(lr, model, grads),
        }
    }

    /// True when the optimiser keeps state between steps that a checkpoint must carry.
    pub(crate) fn has_state(&self) -> bool {
        matches!(self, Self::AdamW(_))
    }

    /// The optimiser state, or `None` for stateless plain SGD.
    pub(crate) fn state_bytes(&self) -> Result<Option<Vec<u8>>, TrainError> {
        match self {
            Self::Sgd(_) => Ok(None),
            Self::AdamW(o) => record_bytes::<B, _>(o.to_record()).map(Some),
        }
    }

    pub(crate) fn load_state(
        self,
        bytes: Vec<u8>,
        device: &B::Device,
        dir: &Path,
    ) -> Result<Self, TrainError> {
        Ok(match self {
            Self::Sgd(o) => Self::Sgd(o),
            Self::AdamW(o) => {
                Self::AdamW(o.load_record(record_from_bytes::<B, _>(bytes, device, dir)?))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::Module;
    use burn::optim::AdamWConfig;
    use makemore_model::{ModelConfig, NormKind};

    /// Every parameter's values, in order.
    fn values<B: Backend>(model: &Model<B>) -> Vec<Vec<f64>> {
        struct Collect(Vec<Vec<f64>>);
        impl<B: Backend> burn::module::ModuleVisitor<B> for Collect {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
                self.0.push(
                    p.val()
                        .into_data()
                        .convert::<f64>()
                        .to_vec()
                        .unwrap_or_default(),
                );
            }
        }
        let mut c = Collect(Vec::new());
        model.visit(&mut c);
        c.0
    }

    /// Trains two copies of a model, one with burn's AdamW and one with ours, on the same
    /// batches and learning rates, and asserts the same parameters after every step.
    fn same_as_burns<B: FusedAutodiff>() {
        let device = Default::default();
        let config = ModelConfig::new(27, 3)
            .with_n_hidden(16)
            .with_n_layers(2)
            .with_norm(NormKind::Layer);
        let mut ours = config.init::<B>(&device);
        let mut theirs = config.init::<B>(&device);
        let mut fused = TrainOptimizer::<B>::new(OptimizerKind::adamw(0.01));
        let mut burn_adamw = AdamWConfig::new()
            .with_weight_decay(0.01)
            .init::<B, Model<B>>();
        for (step, lr) in [0.003, 0.01, 0.002, 0.0, 0.005].into_iter().enumerate() {
            let contexts: Vec<i64> = (0..24).map(|i| ((i * 5 + step * 3) % 27) as i64).collect();
            let targets: Vec<i64> = (0..8).map(|i| ((i * 7 + step) % 27) as i64).collect();
            let grads = |model: &Model<B>| {
                let x = Tensor::<B, 2, Int>::from_data(
                    TensorData::new(contexts.clone(), [8, 3]),
                    &device,
                );
                let y =
                    Tensor::<B, 1, Int>::from_data(TensorData::new(targets.clone(), [8]), &device);
                let loss = model.loss(model.forward(x), y);
                GradientsParams::from_grads(loss.backward(), model)
            };
            let (g_ours, g_theirs) = (grads(&ours), grads(&theirs));
            ours = fused.step(lr, ours, g_ours);
            theirs = burn_adamw.step(lr, theirs, g_theirs);
            assert_eq!(values(&ours), values(&theirs), "after step {step}");
        }
    }

    #[test]
    fn fused_adamw_is_bit_for_bit_burns() {
        // ndarray f32: the one-pass kernel.
        same_as_burns::<Autodiff<NdArray<f32>>>();
        assert_eq!(makemore_model::fused::fallbacks(), 0);
        // ndarray f64: FusedOps' default body.
        same_as_burns::<Autodiff<NdArray<f64>>>();
    }

    #[test]
    fn burns_adamw_state_loads_into_ours() {
        type B = Autodiff<NdArray<f32>>;
        let device = Default::default();
        let model = ModelConfig::new(27, 3).with_n_hidden(8).init::<B>(&device);
        let x = Tensor::<B, 2, Int>::from_data(
            TensorData::new(vec![1i64, 2, 3, 4, 5, 6], [2, 3]),
            &device,
        );
        let y = Tensor::<B, 1, Int>::from_data(TensorData::new(vec![7i64, 8], [2]), &device);
        let grads = GradientsParams::from_grads(model.loss(model.forward(x), y).backward(), &model);
        let mut burn_adamw = AdamWConfig::new()
            .with_weight_decay(0.01)
            .init::<B, Model<B>>();
        let _ = burn_adamw.step(0.01, model, grads);
        let bytes = record_bytes::<B, _>(burn_adamw.to_record()).unwrap();
        let ours = TrainOptimizer::<B>::new(OptimizerKind::adamw(0.01))
            .load_state(bytes.clone(), &device, Path::new("test"))
            .unwrap();
        assert!(ours
            .state_bytes()
            .unwrap()
            .is_some_and(|b| b.len() == bytes.len()));
    }
}
