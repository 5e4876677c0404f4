//! Mixed precision: the model's parameters stay in f32 (the master weights the optimiser updates
//! and the checkpoints hold), and a forward pass can run on a bf16 copy of them,
//! [`Transformer::cast_parameters`]. The copy is made inside the autodiff graph, so the gradient
//! of every bf16 weight flows back, cast to f32, to its f32 master.
//!
//! With bf16 parameters the activations are bf16 from the embedding on, so every matmul (the
//! projections, the FFN, the experts, the LM head) runs in bf16, and the residual stream is bf16
//! too (Megatron-LM's default; its `fp32_residual_connection` is off unless asked for). Some
//! operations keep f32 wherever their input comes from:
//!
//! | operation | where | precision |
//! |---|---|---|
//! | RMSNorm | Burn's `RmsNorm::forward` | mean of squares in f32, output in the input's dtype |
//! | attention, fused kernel that takes bf16 | libtorch's flash attention (CPU, CUDA) | bf16 products, f32 softmax and accumulators inside the kernel |
//! | attention, every other path | [`crate::sdpa`] (flex's kernel, the reference, the probes) | computed in f32 from the bf16 `q`, `k`, `v` (so the softmax is f32); output back to bf16 |
//! | the other cures' weights | [`crate::cure::weights`] | f32 scores, f32 weights |
//! | mixture-of-experts routing | [`crate::moe`] | router logits, softmax, top-k, auxiliary losses in f32 |
//! | the loss | [`crate::transformer::masked_cross_entropy`] and the others | log-softmax of f32 logits |
//!
//! Analyses (probes, sink statistics, evaluation) run the f32 model: nothing outside a training
//! step's forward and backward pass sees bf16.

use crate::transformer::Transformer;
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Device, Tensor};

/// Every float parameter of a module cast to `dtype`, ids kept (a gradient found for a cast
/// parameter is the gradient of its master).
struct CastParameters(DType);

impl ModuleMapper for CastParameters {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

impl Transformer {
    /// The same model with every float parameter cast to `dtype` (`DType::BF16` for a mixed-
    /// precision forward pass; module docs). On an autodiff device the casts are part of the
    /// graph: `GradientsParams::from_grads(loss.backward(), &master)` finds each master's gradient.
    pub fn cast_parameters(&self, dtype: DType) -> Transformer {
        cast_module(self, dtype)
    }
}

/// A copy of any module (a block, a norm, the LM head) with every float parameter cast to
/// `dtype`, as [`Transformer::cast_parameters`] does for the whole model.
pub(crate) fn cast_module<M: Module>(module: &M, dtype: DType) -> M {
    if dtype == DType::F32 {
        return module.clone();
    }
    module.clone().map(&mut CastParameters(dtype))
}

/// Whether `device` is a CUDA device of Burn's CubeCL backend (`--backend cuda`), as opposed to
/// wgpu on the same backend, or another backend.
pub fn is_burn_cuda(device: &Device) -> bool {
    #[cfg(feature = "cube")]
    {
        matches!(device.clone().inner().as_dispatch(), burn::backend::DispatchDevice::Cube(cubecl::Device::Cuda(_)))
    }
    #[cfg(not(feature = "cube"))]
    {
        let _ = device;
        false
    }
}

/// Whether `device` computes in bf16, or why not: flex, libtorch (CPU and CUDA) and Burn's CUDA
/// backend do; wgpu does not (WGSL has no bf16 type, so CubeCL's wgpu runtime has none).
pub fn bf16_support(device: &Device) -> Result<(), String> {
    use burn::backend::DispatchDevice;
    match device.clone().inner().as_dispatch() {
        DispatchDevice::Flex(_) => Ok(()),
        #[cfg(feature = "tch")]
        DispatchDevice::LibTorch(_) => Ok(()),
        #[cfg(feature = "cube")]
        DispatchDevice::Cube(_) if is_burn_cuda(device) => Ok(()),
        #[cfg(feature = "cube")]
        DispatchDevice::Cube(_) => {
            Err("wgpu has no bf16 (WGSL shaders have no bf16 type); use flex, tch or tch-cuda".into())
        }
        #[allow(unreachable_patterns)]
        _ => Err("this backend has no bf16 in gatelab".into()),
    }
}
