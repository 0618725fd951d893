use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;

/// One example for [`ContextBatcher`]: a context of `block_size` indices and its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextItem {
    /// Context indices.
    pub context: Vec<u32>,
    /// Next-character index.
    pub target: u32,
}

/// A batch of contexts and targets as burn tensors.
#[derive(Debug, Clone)]
pub struct ContextBatch<B: Backend> {
    /// `[batch, block_size]` context indices.
    pub inputs: Tensor<B, 2, Int>,
    /// `[batch]` target indices.
    pub targets: Tensor<B, 1, Int>,
}

/// A burn [`Batcher`] that stacks [`ContextItem`]s into a [`ContextBatch`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ContextBatcher;

impl ContextBatcher {
    /// Makes a batch from flat row-major inputs (`targets.len() * block_size`) and targets.
    pub fn from_flat<B: Backend>(
        inputs: &[u32],
        targets: &[u32],
        device: &B::Device,
    ) -> ContextBatch<B> {
        let n = targets.len();
        let block = inputs.len().checked_div(n).unwrap_or(0);
        let inputs: Vec<i64> = inputs.iter().map(|&x| i64::from(x)).collect();
        let targets: Vec<i64> = targets.iter().map(|&x| i64::from(x)).collect();
        ContextBatch {
            inputs: Tensor::from_data(TensorData::new(inputs, [n, block]), device),
            targets: Tensor::from_data(TensorData::new(targets, [n]), device),
        }
    }
}

impl<B: Backend> Batcher<B, ContextItem, ContextBatch<B>> for ContextBatcher {
    fn batch(&self, items: Vec<ContextItem>, device: &B::Device) -> ContextBatch<B> {
        let inputs: Vec<u32> = items
            .iter()
            .flat_map(|it| it.context.iter().copied())
            .collect();
        let targets: Vec<u32> = items.iter().map(|it| it.target).collect();
        Self::from_flat(&inputs, &targets, device)
    }
}

impl crate::Examples {
    /// Example `i` as a [`ContextItem`] for the burn batcher.
    pub fn item(&self, i: usize) -> ContextItem {
        ContextItem {
            context: self.context(i).to_vec(),
            target: self.target(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use makemore_vocab::Vocab;

    type B = burn::backend::NdArray<f32>;

    #[test]
    fn batches_have_the_right_shapes_and_values() {
        let vocab = Vocab::from_words(["ab"]).unwrap();
        let ex = crate::Examples::from_words(&["ab"], &vocab, 2).unwrap();
        let items = (0..ex.len()).map(|i| ex.item(i)).collect();
        let batch: ContextBatch<B> = ContextBatcher.batch(items, &Default::default());
        assert_eq!(batch.inputs.dims(), [3, 2]);
        let targets: Vec<i64> = batch.targets.into_data().convert::<i64>().to_vec().unwrap();
        assert_eq!(targets, [1, 2, 0]);
    }
}
