//! Can Burn 0.22.1's collective runtime (`DistributedContext`, `all_reduce`) sum a tensor over
//! two devices of a backend on this machine? The probe behind docs/backends.md's "Data parallel"
//! (issue 21): on flex, tch and wgpu (lavapipe, or a GPU without a device transport) it cannot,
//! so `--devices` keeps gatelab's own loop.
//!
//!     cargo run --release --example collective_probe -- flex|wgpu
use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation, all_reduce};
use burn::tensor::{Device, Tensor};

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "flex".into());
    let devices: Vec<Device> = match which.as_str() {
        // Two wgpu devices on one adapter: the default one and the CPU one (lavapipe here).
        #[cfg(feature = "wgpu")]
        "wgpu" => {
            vec![Device::wgpu(burn::tensor::DeviceKind::DefaultDevice), Device::wgpu(burn::tensor::DeviceKind::Cpu)]
        }
        _ => vec![Device::flex(), Device::flex()],
    };
    println!("devices: {devices:?}");
    let result = std::panic::catch_unwind(|| {
        let _context =
            DistributedContext::init(devices.clone(), DistributedConfig { all_reduce_op: ReduceOperation::Sum });
        let threads: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (t, ids) = (Tensor::<1>::from_floats([i as f32 + 1.0], d), devices.clone());
                std::thread::spawn(move || {
                    all_reduce(t, ReduceOperation::Sum, ids).resolve().into_data().try_to_vec::<f32>().unwrap()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join()).collect::<Vec<_>>()
    });
    match result {
        Ok(sums) if sums.iter().all(|s| matches!(s, Ok(v) if v == &[3.0])) => {
            println!("all_reduce works: 1 + 2 = 3 on each device")
        }
        _ => println!("all_reduce does not work on these devices (the panic above says why)"),
    }
}
