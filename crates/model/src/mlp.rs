use burn::module::Module;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use crate::init::NormalStream;
use crate::{InitScheme, MlpConfig};

/// Embedding → concatenated context → (Linear → tanh) × n_layers → Linear → logits.
///
/// Parameter names (as stored in safetensors): `embedding.weight`, `hidden.{i}.weight`,
/// `hidden.{i}.bias`, `output.weight`, `output.bias`, and `direct.weight` when enabled.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Character embeddings `[vocab, n_embd]` (the notebook's `C`).
    pub embedding: Embedding<B>,
    /// Hidden layers (the notebook's `W1`, `b1`).
    pub hidden: Vec<Linear<B>>,
    /// Output layer (the notebook's `W2`, `b2`).
    pub output: Linear<B>,
    /// Direct embedding-to-output connections (Bengio et al. 2003), without bias.
    pub direct: Option<Linear<B>>,
}

impl MlpConfig {
    /// Builds the model with weights drawn from `init_seed` on the host.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        let mut rng = NormalStream::new(self.init_seed);
        let input = self.block_size * self.n_embd;
        let notebook = self.init == InitScheme::Notebook;
        let embedding = rng.embedding(self.vocab_size, self.n_embd, device);
        let mut hidden = Vec::with_capacity(self.n_layers);
        let mut fan_in = input;
        for _ in 0..self.n_layers {
            let (w, b) = if notebook {
                (1.0, 1.0)
            } else {
                ((5.0 / 3.0) / (fan_in as f32).sqrt(), 0.01)
            };
            hidden.push(rng.linear(fan_in, self.n_hidden, w, Some(b), device));
            fan_in = self.n_hidden;
        }
        let (w, b) = if notebook { (1.0, 1.0) } else { (0.01, 0.0) };
        let output = rng.linear(fan_in, self.vocab_size, w, Some(b), device);
        let direct = self.direct.then(|| {
            rng.linear(
                input,
                self.vocab_size,
                if notebook { 1.0 } else { 0.01 },
                None,
                device,
            )
        });
        Mlp {
            embedding,
            hidden,
            output,
            direct,
        }
    }
}

impl<B: Backend> Mlp<B> {
    /// Logits for the next character of each context.
    ///
    /// # Shapes
    /// - `contexts`: `[batch, block_size]` character indices
    /// - returns: `[batch, vocab_size]`
    pub fn forward(&self, contexts: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [batch, block] = contexts.dims();
        let table = self.embedding.weight.val();
        let [_, n_embd] = table.dims();
        // One gather of all context characters, then view as the concatenation.
        let emb = table
            .select(0, contexts.reshape([batch * block]))
            .reshape([batch, block * n_embd]);
        let mut h = emb.clone();
        for layer in &self.hidden {
            h = layer.forward(h).tanh();
        }
        let logits = self.output.forward(h);
        match &self.direct {
            Some(direct) => logits + direct.forward(emb),
            None => logits,
        }
    }

    /// Embedding table as host values, `[vocab][n_embd]`, for plots.
    pub fn embedding_table(&self) -> Vec<Vec<f32>> {
        let table = self.embedding.weight.val();
        let [_, n_embd] = table.dims();
        let values: Vec<f32> = table
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap_or_default();
        values.chunks(n_embd.max(1)).map(<[f32]>::to_vec).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cross_entropy;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    #[test]
    fn param_count_matches_config() {
        let device = Default::default();
        for (layers, direct) in [(1, false), (2, true), (3, false)] {
            let config = MlpConfig::new(27, 4)
                .with_n_layers(layers)
                .with_direct(direct);
            assert_eq!(config.init::<B>(&device).num_params(), config.num_params());
        }
    }

    #[test]
    fn same_seed_same_weights_and_scaled_init_starts_near_uniform() {
        let device = Default::default();
        let config = MlpConfig::new(27, 3);
        let a = config.init::<B>(&device).embedding_table();
        let b = config.init::<B>(&device).embedding_table();
        assert_eq!(a, b);
        let model = config.init::<B>(&device);
        let contexts = Tensor::<B, 2, Int>::from_data(
            TensorData::new(vec![0i64, 1, 2, 3, 4, 5], [2, 3]),
            &device,
        );
        let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), &device);
        let loss: f32 = cross_entropy(model.forward(contexts), targets).into_scalar();
        assert!((loss - 27f32.ln()).abs() < 0.1, "initial loss {loss}");
    }

    #[test]
    fn config_validation_names_the_field() {
        assert!(MlpConfig::new(27, 0)
            .validate()
            .unwrap_err()
            .contains("block_size"));
        assert!(MlpConfig::new(27, 3)
            .with_n_hidden(0)
            .validate()
            .unwrap_err()
            .contains("n_hidden"));
        assert!(MlpConfig::new(27, 3)
            .with_n_embd(1 << 19)
            .with_n_hidden(1 << 19)
            .validate()
            .is_err());
        assert!(MlpConfig::new(27, 3).validate().is_ok());
    }
}
