//! Data parallel through Burn's `all_reduce` (`gatelab::collective`): on two CUDA devices, the sum
//! of the two halves' gradients equals the one-device gradient of the whole batch. Skipped, with
//! the reason, where two CUDA devices do not exist (a build without the `cuda` feature, no NVIDIA
//! driver, one GPU); `bench/gpu.sh` runs it where they do. Which engine a device list gets is
//! checked everywhere.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use gatelab::backend::{Backend, open};
use gatelab::collective::{Collective, Engine};
use gatelab_model::{Transformer, cross_entropy};

mod common;

#[test]
fn engines_by_device() {
    assert_eq!(Engine::for_devices(&[Device::flex()]), Engine::Single);
    assert_eq!(Engine::for_devices(&[Device::flex(), Device::flex()]), Engine::Gatelab);
    assert_eq!(Engine::for_backend(Backend::Flex, 2), Engine::Gatelab);
    assert_eq!(Engine::for_backend(Backend::Cuda, 2), Engine::Burn);
    assert_eq!(Engine::for_backend(Backend::Cuda, 1), Engine::Single);
}

/// The gradient of the mean loss of `rows` of the batch, weighted by their share, on `device`.
fn half_grads(
    model: &Transformer,
    device: &Device,
    seq: &[i64],
    rows: std::ops::Range<usize>,
    n: usize,
) -> GradientsParams {
    let t = 8;
    let tokens = |offset: usize| {
        let values: Vec<i64> =
            rows.clone().flat_map(|r| seq[r * (t + 1) + offset..r * (t + 1) + offset + t].to_vec()).collect();
        Tensor::<2, Int>::from_data(TensorData::new(values, [rows.len(), t]), device)
    };
    let replica = model.clone().fork(device);
    let loss = cross_entropy(replica.forward(tokens(0)), tokens(1)).mul_scalar(rows.len() as f64 / n as f64);
    GradientsParams::from_grads(loss.backward(), &replica)
}

struct Compare<'a> {
    a: &'a GradientsParams,
    b: &'a GradientsParams,
    worst: f32,
}

impl ModuleVisitor for Compare<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let (a, b) = (self.a.get::<D>(param.id).expect("a gradient"), self.b.get::<D>(param.id).expect("a gradient"));
        let b = Tensor::<D>::from_data(b.into_data(), &a.device());
        let scale = a.clone().abs().max().into_scalar::<f32>().max(1e-6);
        self.worst = self.worst.max((a - b).abs().max().into_scalar::<f32>() / scale);
    }
}

#[test]
fn two_cuda_devices_give_the_one_device_gradient() {
    if !Backend::compiled().contains(&Backend::Cuda) {
        println!("SKIPPED: this build has no cuda (GATELAB_FEATURES=cuda)");
        return;
    }
    let devices = match (open(Backend::Cuda, 0), open(Backend::Cuda, 1)) {
        (Ok(a), Ok(b)) => [a, b],
        (Err(e), _) | (_, Err(e)) => {
            println!("SKIPPED: two CUDA devices are needed: {e}");
            return;
        }
    };
    let config = common::small_model_config();
    let main = devices[0].clone().autodiff();
    let model = config.init(&main).unwrap();
    let seq: Vec<i64> = (0..4 * 9).map(|i| (i * 7 % 17) as i64).collect();
    let one = half_grads(&model, &main, &seq, 0..4, 4);
    let collective = Collective::start(&devices);
    let parts = vec![
        (model.clone(), half_grads(&model, &main, &seq, 0..2, 4)),
        (
            model.clone().fork(&devices[1].clone().autodiff()),
            half_grads(&model, &devices[1].clone().autodiff(), &seq, 2..4, 4),
        ),
    ];
    let two = collective.sum(parts);
    let mut compare = Compare { a: &one, b: &two, worst: 0.0 };
    model.visit(&mut compare);
    assert!(
        compare.worst < 1e-4,
        "two devices' gradient differs from one device's by {:e} of its scale",
        compare.worst
    );
}
