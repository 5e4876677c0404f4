//! AdamW as one fused update per parameter tensor.
//!
//! Burn's `AdamW` updates each parameter with about fifteen tensor operations (the moments, their
//! bias corrections, the square root, the division, the decay, the step), each a full pass over
//! the parameter and a kernel launch: a few hundred launches per training step for a small model,
//! and fifteen passes over every parameter. [`FusedAdamW`] computes the same update,
//!
//! ```text
//! m ← β₁m + (1−β₁)g     v ← β₂v + (1−β₂)g²     p ← p·(1 − lr·λ) − lr · (m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)
//! ```
//!
//! on flex as one pass over `p, g, m, v` ([`adamw_kernel`], parallel over chunks), and on libtorch
//! with ten of libtorch's operations (two `lerp`s for the moments). Its state is Burn's
//! `AdamWState`, so optimiser checkpoints written by either load into the other. Elsewhere (wgpu,
//! libtorch on a GPU, other dtypes) it runs Burn's `AdamW`. Tested against it:
//! `experiments/tests/optim.rs`.

// burn-tch (`LibTorch`) is deprecated upstream; gatelab keeps its libtorch backend.
#![allow(deprecated)]

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Tensor};
use gatelab_model::fused::on_fused_cpu;

/// One AdamW step's constants.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// Learning rate.
    pub lr: f64,
    /// `β₁`.
    pub beta_1: f64,
    /// `β₂`.
    pub beta_2: f64,
    /// `ε`.
    pub epsilon: f64,
    /// Decoupled weight decay `λ`.
    pub weight_decay: f64,
    /// `1 − β₁ᵗ`.
    pub correction_1: f64,
    /// `1 − β₂ᵗ`.
    pub correction_2: f64,
}

/// The fused update, on the backends that have it.
#[backend_extension(Flex, LibTorch: cfg(feature = "tch"))]
pub trait AdamWOps: Backend {
    /// `param`, `grad`, `m`, `v` of one shape → `(param', m', v')`.
    #[allow(clippy::too_many_arguments)]
    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        lr: f64,
        beta_1: f64,
        beta_2: f64,
        epsilon: f64,
        weight_decay: f64,
        correction_1: f64,
        correction_2: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// The update on slices: `p`, `m`, `v` in place.
pub fn adamw_kernel(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: Step) {
    use rayon::prelude::*;
    const CHUNK: usize = 16_384;
    let (b1, b2) = (s.beta_1 as f32, s.beta_2 as f32);
    let decay = (1.0 - s.lr * s.weight_decay) as f32;
    let (lr, eps) = (s.lr as f32, s.epsilon as f32);
    let (c1, c2) = (s.correction_1 as f32, s.correction_2 as f32);
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| {
            for i in 0..p.len() {
                let gi = g[i];
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let delta = (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
                p[i] = p[i] * decay - lr * delta;
            }
        });
}

impl AdamWOps for Flex {
    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        lr: f64,
        beta_1: f64,
        beta_2: f64,
        epsilon: f64,
        weight_decay: f64,
        correction_1: f64,
        correction_2: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        use burn::backend::TensorMetadata;
        use burn::backend::flex::FlexTensor;
        // Updated in place: a tensor that is contiguous from the start of its own buffer, copied
        // first (copy-on-write) only if another tensor shares that buffer.
        let own = |x: FlexTensor| {
            let x = x.to_contiguous();
            let n = x.shape().num_elements();
            if x.layout().contiguous_offsets() == Some((0, n)) && x.storage::<f32>().len() == n {
                x
            } else {
                FlexTensor::from_data(x.into_data())
            }
        };
        let (mut p, mut m, mut v) = (own(param), own(m), own(v));
        let grad = grad.to_contiguous();
        let s = Step { lr, beta_1, beta_2, epsilon, weight_decay, correction_1, correction_2 };
        adamw_kernel(
            p.storage_mut(),
            grad.as_slice::<f32>().expect("contiguous f32"),
            m.storage_mut(),
            v.storage_mut(),
            s,
        );
        (p, m, v)
    }
}

#[cfg(feature = "tch")]
impl AdamWOps for burn::backend::LibTorch {
    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        lr: f64,
        beta_1: f64,
        beta_2: f64,
        epsilon: f64,
        weight_decay: f64,
        correction_1: f64,
        correction_2: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        use burn::backend::libtorch::TchTensor;
        let g = &grad.tensor;
        let m = m.tensor.lerp(g, 1.0 - beta_1);
        let v = v.tensor.lerp(&g.square(), 1.0 - beta_2);
        let denom = v.sqrt() * (1.0 / correction_2.sqrt()) + epsilon;
        let p = &param.tensor * (1.0 - lr * weight_decay) - (&m / denom) * (lr / correction_1);
        (TchTensor::new(p), TchTensor::new(m), TchTensor::new(v))
    }
}

/// AdamW with the fused update on the CPU backends ([`on_fused_cpu`]), Burn's `AdamW` elsewhere
/// (neither AMSGrad nor cautious weight decay: gatelab uses neither).
#[derive(Clone)]
pub struct FusedAdamW {
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    weight_decay: f64,
    burn: AdamW,
}

impl FusedAdamW {
    /// With `β₁`, `β₂`, `ε` and the decoupled weight decay, as Burn's `AdamWConfig` takes them
    /// (no gradient clipping of its own: gatelab clips globally itself).
    pub fn new(beta_1: f64, beta_2: f64, epsilon: f64, weight_decay: f64) -> Self {
        let config = AdamWConfig::new()
            .with_beta_1(beta_1 as f32)
            .with_beta_2(beta_2 as f32)
            .with_epsilon(epsilon as f32)
            .with_weight_decay(weight_decay as f32);
        // The fused update uses the constants Burn's would, rounded to f32 as Burn stores them.
        let f = |x: f64| x as f32 as f64;
        Self {
            beta_1: f(beta_1),
            beta_2: f(beta_2),
            epsilon: f(epsilon),
            weight_decay: f(weight_decay),
            burn: config.build(),
        }
    }

    /// The whole-model optimiser.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        if !on_fused_cpu(&tensor.device(), tensor.dtype()) {
            return self.burn.step(lr, tensor, grad, state);
        }
        let (m, v, time) = match state {
            Some(s) => (s.momentum.moment_1, s.momentum.moment_2, s.momentum.time),
            None => (grad.zeros_like(), grad.zeros_like(), 0),
        };
        let time = time + 1;
        let (c1, c2) = (1.0 - self.beta_1.powi(time as i32), 1.0 - self.beta_2.powi(time as i32));
        let (p, m, v) = <Dispatch as AdamWOps>::adamw_step(
            tensor.into_dispatch(),
            grad.into_dispatch(),
            m.into_dispatch(),
            v.into_dispatch(),
            lr,
            self.beta_1,
            self.beta_2,
            self.epsilon,
            self.weight_decay,
            c1,
            c2,
        );
        let momentum = AdaptiveMomentumState::new(time, Tensor::from_dispatch(m), Tensor::from_dispatch(v));
        (Tensor::from_dispatch(p), Some(AdamWState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}
