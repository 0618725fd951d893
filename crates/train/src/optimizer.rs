//! The optimisers a run can use, behind one type so the trainer has one code path.

use std::path::Path;

use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::GradientsParams;
use burn::optim::{AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
use burn::tensor::backend::AutodiffBackend;
use makemore_model::Mlp;

use crate::checkpoint::{record_bytes, record_from_bytes};
use crate::{OptimizerKind, TrainError};

/// SGD or AdamW over an [`Mlp`].
pub(crate) enum TrainOptimizer<B: AutodiffBackend> {
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, Mlp<B>, B>),
    AdamW(OptimizerAdaptor<AdamW, Mlp<B>, B>),
}

impl<B: AutodiffBackend> TrainOptimizer<B> {
    pub(crate) fn new(kind: OptimizerKind) -> Self {
        match kind {
            OptimizerKind::Sgd => Self::Sgd(SgdConfig::new().init()),
            OptimizerKind::Adamw { weight_decay } => Self::AdamW(
                AdamWConfig::new()
                    .with_weight_decay(weight_decay as f32)
                    .init(),
            ),
        }
    }

    pub(crate) fn step(&mut self, lr: f64, model: Mlp<B>, grads: GradientsParams) -> Mlp<B> {
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
