//! Activation checkpointing per block (`train.checkpointing = blocks`): a training step's
//! gradients computed while keeping only each block's input, recomputing the rest of the block
//! in the backward pass, as PyTorch's `torch.utils.checkpoint` around each block does.
//!
//! Burn 0.22.1's autodiff checkpoints per operation (`BalancedCheckpointing` recomputes
//! memory-bound results and keeps the inputs of matmuls and fused kernels, which is most of what
//! a transformer keeps), and has no operation whose backward runs a sub-graph's forward and
//! backward again. So the backward pass here is a chain of segments, each a small graph
//! differentiated on its own:
//!
//! 1. a forward pass off the autodiff graph (on the inner device) keeps the residual stream at
//!    each block's input, `h_0 … h_{L-1}`, and after the last block, `h_L`;
//! 2. the head (final norm, LM head, the caller's objective) on a leaf holding `h_L`: its
//!    backward pass gives the head's parameter gradients and `g_L = ∂J/∂h_L`;
//! 3. each block from the last to the first, on a leaf holding `h_l`: its forward pass runs again
//!    on the graph and is differentiated through `Σ block(h_l) ⊙ g_{l+1}` (plus its
//!    mixture-of-experts auxiliary loss, weighted as in the objective), which gives its
//!    parameters' gradients and `g_l`;
//! 4. the embedding, through `Σ embed(tokens) ⊙ g_0`.
//!
//! The backward pass then holds the `L + 1` block boundaries and one block's activations at a
//! time instead of every block's, and each block's forward pass runs twice (about a third more
//! compute per step). Every segment computes what the whole graph computes, in the same order,
//! so a dense model trains bit-identically to `none` (`experiments/tests/checkpointing.rs`). A
//! routed model (experts, Switch-Head) agrees to rounding, not bit for bit: the last bit of its
//! stream computed off the graph can differ from the graph's forward
//! (`model/tests/model/recompute.rs`).
//! Mixed precision works as in [`crate::precision`]: each segment casts its own parameters, and
//! the gradients land on the f32 masters.

use crate::fused::rms_norm;
use crate::precision::cast_module;
use crate::transformer::{Transformer, logits};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Gradients, Int, Tensor};

impl Transformer {
    /// The gradients of `objective(logits) + aux_weight · Σ aux` with respect to every parameter
    /// that requires one, computed block by block (module docs), and the value of
    /// `objective(logits)`. `aux` is each mixture-of-experts layer's auxiliary loss, as in
    /// [`Transformer::forward_with_aux`]; the forward pass runs on the parameters cast to `dtype`
    /// (f32, or bf16 for mixed precision).
    ///
    /// `self` must be on an autodiff device. The gradients are those of
    /// `objective(logits) + aux_weight · aux` differentiated on the whole graph.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]`
    /// - `objective`: `[batch, seq, vocab]` → `[1]`
    pub fn backward_by_blocks(
        &self,
        tokens: Tensor<2, Int>,
        dtype: DType,
        aux_weight: f64,
        objective: impl FnOnce(Tensor<3>) -> Tensor<1>,
    ) -> (Tensor<1>, GradientsParams) {
        let t = tokens.dims()[1];
        let leaf = |h: &Tensor<3>| h.clone().autodiff().require_grad();
        let mut total = GradientsParams::new();

        // 1. Off the graph: the stream at every block boundary.
        let plain = cast_module(&self.valid(), dtype);
        let mut h = plain.embed_tokens.forward(tokens.clone().inner());
        let (cos, sin, mask) = self.tables(t, &h);
        let mut bounds = Vec::with_capacity(self.layers.len() + 1);
        for block in &plain.layers {
            let next = block.forward(h.clone(), &cos, &sin, &mask, true, None).0;
            bounds.push(h);
            h = next;
        }
        bounds.push(h);
        drop(plain);

        // 2. The head.
        let x = leaf(&bounds.pop().expect("the last boundary"));
        let (norm, lm_head) = (cast_module(&self.norm, dtype), self.lm_head.as_ref().map(|l| cast_module(l, dtype)));
        let tied = lm_head.is_none().then(|| cast_module(&self.embed_tokens, dtype));
        let embed = tied.as_ref().unwrap_or(&self.embed_tokens);
        let value = objective(logits(lm_head.as_ref(), embed, rms_norm(&norm, x.clone())));
        let mut grads = value.backward();
        let mut g = x.grad(&grads).expect("the head's input is a leaf that requires a gradient");
        collect(&mut total, &mut grads, &self.norm);
        collect(&mut total, &mut grads, &self.lm_head);
        collect(&mut total, &mut grads, &self.embed_tokens);

        // 3. The blocks, last first.
        if !self.layers.is_empty() {
            let (cos, sin, mask) = self.tables(t, &x);
            for (block, h) in self.layers.iter().zip(bounds).rev() {
                let x = leaf(&h);
                let (out, routing) = cast_module(block, dtype).forward(x.clone(), &cos, &sin, &mask, true, None);
                let mut surrogate = (out * g.autodiff()).sum().cast(DType::F32);
                if let Some(r) = routing {
                    surrogate = surrogate + r.aux.mul_scalar(aux_weight);
                }
                let mut grads = surrogate.backward();
                g = x.grad(&grads).expect("a block's input is a leaf that requires a gradient");
                collect(&mut total, &mut grads, block);
            }
        }

        // 4. The embedding, where it trains.
        if self.embed_tokens.weight.is_require_grad() {
            let h = cast_module(&self.embed_tokens, dtype).forward(tokens);
            let mut grads = (h * g.autodiff()).sum().backward();
            collect(&mut total, &mut grads, &self.embed_tokens);
        }
        (value.detach(), total)
    }
}

/// Moves `module`'s gradients from `grads` into `total`, adding to any already there (a tied
/// embedding gets one from the embedding and one from the LM head).
pub fn collect<M: Module>(total: &mut GradientsParams, grads: &mut Gradients, module: &M) {
    let mut found = GradientsParams::from_module(grads, module);
    add_grads(total, &mut found, module);
}

/// Adds `from`'s gradients of `module`'s parameters into `into`, parameter by parameter.
pub fn add_grads<M: Module>(into: &mut GradientsParams, from: &mut GradientsParams, module: &M) {
    module.visit(&mut AddGrads { into, from });
}

struct AddGrads<'a> {
    into: &'a mut GradientsParams,
    from: &'a mut GradientsParams,
}

impl ModuleVisitor for AddGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.from.remove::<D>(param.id) {
            let sum = match self.into.remove::<D>(param.id) {
                Some(t) => t + g,
                None => g,
            };
            self.into.register(param.id, sum);
        }
    }
}
