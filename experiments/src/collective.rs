//! Data parallel through Burn's collective runtime, where it has a transport between devices.
//!
//! Burn 0.22.1's `all_reduce` moves tensors between devices only on CUDA (NCCL, through CubeCL's
//! CUDA runtime); flex panics, libtorch leaves the operation unimplemented, and wgpu has no device
//! transport (`examples/collective_probe.rs` shows each, issue 21). So a step's gradients are
//! summed by:
//!
//! - [`Engine::Burn`], every device a CUDA device of Burn's `cuda` backend: each replica's
//!   gradients, flattened parameter by parameter, go through `all_reduce(Sum)` over the devices,
//!   one thread per device as the collective requires, inside a [`DistributedContext`] held for
//!   the run; the first device's sums are the batch's gradient.
//! - [`Engine::Gatelab`], elsewhere: each replica's gradients are moved to the first device and
//!   added there (`train::Shards::backward`).
//!
//! Both give the gradient of the whole batch, up to summation order; the sweep's first line says
//! which one runs. burn-train's DDP strategy was not taken: it drives Burn's own `Learner` loop
//! (epochs of a data loader, its own checkpoints), where gatelab's loop draws each step's batch
//! from `(seed, step)` so that a run resumes exactly on any device count.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation, all_reduce};
use burn::tensor::{Device, Tensor};
use gatelab_model::precision::is_burn_cuda;

/// What sums a step's gradients over the devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One device: nothing to sum.
    Single,
    /// Burn's `all_reduce` (CUDA devices of the `cuda` backend).
    Burn,
    /// gatelab's loop: gradients moved to the first device and added.
    Gatelab,
}

impl Engine {
    /// The engine for `devices`.
    pub fn for_devices(devices: &[Device]) -> Self {
        Self::of(devices.len(), devices.iter().all(is_burn_cuda))
    }

    /// The engine `n` devices of `backend` will get (the sweep's header, before any is opened).
    pub fn for_backend(backend: crate::backend::Backend, n: usize) -> Self {
        Self::of(n, backend == crate::backend::Backend::Cuda)
    }

    /// `n` devices, all CUDA devices of Burn's backend or not.
    fn of(n: usize, cuda: bool) -> Self {
        match n {
            0 | 1 => Engine::Single,
            _ if cuda => Engine::Burn,
            _ => Engine::Gatelab,
        }
    }

    /// One line for the sweep's header: how `n` devices share a step.
    pub fn describe(self, n: usize) -> String {
        match self {
            Engine::Single => "one device".into(),
            Engine::Burn => format!("data parallel over {n} devices through Burn's all_reduce (CUDA)"),
            Engine::Gatelab => format!(
                "data parallel over {n} devices through gatelab's loop (Burn's all_reduce has no transport on this backend)"
            ),
        }
    }
}

/// Burn's communication server for the devices of a run, held while it trains.
pub struct Collective {
    devices: Vec<Device>,
    _context: DistributedContext,
}

impl Collective {
    /// Starts the server for `devices` (the plain devices, not their autodiff ones).
    pub fn start(devices: &[Device]) -> Self {
        let devices: Vec<Device> = devices.iter().map(|d| d.clone().inner()).collect();
        let context =
            DistributedContext::init(devices.clone(), DistributedConfig { all_reduce_op: ReduceOperation::Sum });
        Self { devices, _context: context }
    }

    /// The sum of each replica's gradients, on the first replica's device. `parts` are in device
    /// order, each the replica (for its parameters' ids and ranks) and its gradients.
    pub fn sum<M: Module>(&self, parts: Vec<(M, GradientsParams)>) -> GradientsParams {
        assert_eq!(parts.len(), self.devices.len(), "one replica per device");
        let mut first = None;
        let mut flat = Vec::with_capacity(parts.len());
        // Per parameter: whether any replica has a gradient for it (an expert no token of a shard
        // was routed to has none there; that replica sends zeros).
        let mut any = Vec::new();
        for (k, (replica, mut grads)) in parts.into_iter().enumerate() {
            let mut items = Vec::new();
            let mut real = Vec::new();
            replica.visit(&mut Flatten { grads: &mut grads, items: &mut items, real: &mut real });
            if k == 0 {
                first = Some(replica);
                any = real;
            } else {
                any.iter_mut().zip(real).for_each(|(a, r)| *a |= r);
            }
            flat.push(items);
        }
        // One thread per device: each device's all_reduce waits for the others'.
        let threads: Vec<_> = flat
            .into_iter()
            .map(|items| {
                let devices = self.devices.clone();
                std::thread::spawn(move || {
                    let pending: Vec<_> = items
                        .into_iter()
                        .map(|(id, g)| (id, all_reduce(g, ReduceOperation::Sum, devices.clone())))
                        .collect();
                    pending.into_iter().map(|(id, c)| (id, c.resolve())).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut summed: Vec<Vec<_>> =
            threads.into_iter().map(|t| t.join().expect("an all_reduce thread panicked")).collect();
        let mut total = GradientsParams::new();
        let items = summed.swap_remove(0).into_iter().zip(any).filter(|(_, real)| *real).map(|(item, _)| item);
        first.expect("a replica").visit(&mut Unflatten { into: &mut total, items: items.peekable() });
        total
    }
}

/// A gradient flattened for the collective: its parameter and its values (its shape is the
/// parameter's).
type Flat = (ParamId, Tensor<1>);

/// Every trainable parameter's gradient, flattened, in the module's order: the same list on
/// every replica, with zeros where a replica has none (`real` says which).
struct Flatten<'a> {
    grads: &'a mut GradientsParams,
    items: &'a mut Vec<Flat>,
    real: &'a mut Vec<bool>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return; // frozen (`train.trainable`): on no replica
        }
        let n = value.dims().iter().product::<usize>();
        let (flat, real) = match self.grads.remove::<D>(param.id) {
            Some(g) => (g.reshape([n]), true),
            None => (Tensor::<1>::zeros([n], &value.device()).inner(), false),
        };
        self.items.push((param.id, flat));
        self.real.push(real);
    }
}

struct Unflatten<'a, I: Iterator<Item = Flat>> {
    into: &'a mut GradientsParams,
    items: std::iter::Peekable<I>,
}

impl<I: Iterator<Item = Flat>> ModuleVisitor for Unflatten<'_, I> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.items.peek().is_some_and(|(id, _)| *id == param.id) {
            let (id, g) = self.items.next().expect("peeked");
            self.into.register(id, g.reshape(param.val().dims()));
        }
    }
}
