//! Activation checkpointing per block (`gatelab_model::recompute`): the gradients computed block
//! by block must be the whole graph's, parameter by parameter, for the architectures whose
//! segments differ (a tied and an untied LM head, gates, a mixture of experts with its auxiliary
//! loss and Switch-Head, a frozen embedding, bf16), on each backend with fused kernels: bit for
//! bit for dense models, within 1e-5 relative for routed ones (see the test).

use crate::common::{Lcg, batch_tensors, devices};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Tensor};
use gatelab_model::{GatePosition, GateSpec, Granularity, ModelConfig, MoeSpec, SwitchHeadSpec, masked_cross_entropy};

fn base() -> ModelConfig {
    ModelConfig {
        vocab_size: 29,
        d_model: 24,
        n_layers: 3,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 6,
        d_ff: 40,
        init_std: 0.2,
        ..ModelConfig::default()
    }
}

/// Every parameter's gradient as `(name path, values)`, in module order.
fn listed<M: Module>(module: &M, grads: &GradientsParams) -> Vec<(String, Vec<f32>)> {
    struct List<'a> {
        grads: &'a GradientsParams,
        path: Vec<String>,
        out: Vec<(String, Vec<f32>)>,
    }
    impl ModuleVisitor for List<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.out.push((self.path.join("."), g.into_data().try_to_vec::<f32>().unwrap()));
            }
        }
    }
    let mut list = List { grads, path: Vec::new(), out: Vec::new() };
    module.visit(&mut list);
    list.out
}

/// The embedding frozen (as `train.trainable` freezes a parameter).
struct FreezeEmbedding(Vec<String>);

impl ModuleMapper for FreezeEmbedding {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.0.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.0.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.0.first().is_some_and(|m| m == "embed_tokens") { param.set_require_grad(false) } else { param }
    }
}

#[test]
fn gradients_by_blocks_are_the_whole_graphs() {
    let g1 = GateSpec { position: GatePosition::G1, granularity: Granularity::Elementwise, ..GateSpec::BASELINE };
    let experts = ModelConfig {
        moe: MoeSpec { experts: 4, top_k: 2, d_expert: 12, shared_experts: 1, ..Default::default() },
        switch_head: SwitchHeadSpec {
            experts: 2,
            top_k: 1,
            keys: false,
            values: true,
            outputs: false,
            shared_kv_router: false,
        },
        ..base()
    };
    // (label, config, shard weight, frozen embedding, dtype)
    let cases = [
        ("tied head, baseline", base(), 1.0, false, DType::F32),
        (
            "untied head, G1 elementwise",
            ModelConfig { tie_embeddings: false, gate: g1, ..base() },
            1.0,
            false,
            DType::F32,
        ),
        ("experts + Switch-Head, a shard of 0.375", experts, 0.375, false, DType::F32),
        ("frozen embedding, G1", ModelConfig { gate: g1, ..base() }, 1.0, true, DType::F32),
        ("bf16, untied, G1", ModelConfig { tie_embeddings: false, gate: g1, ..base() }, 1.0, false, DType::BF16),
    ];
    for (backend, device) in devices() {
        for (label, config, weight, frozen, dtype) in cases.iter().cloned() {
            let what = format!("{backend}, {label}");
            device.seed(7);
            let mut model = config.init(&device).unwrap();
            let mut rng = Lcg(11);
            let (tokens, targets, _) = batch_tensors(&mut rng, 3, 17, config.vocab_size, &device);
            let mask = Tensor::<2>::ones([3, 17], &device);
            // Initialise the lazy parameters in the forward pass's order, then freeze.
            let _ = model.forward(tokens.clone());
            if frozen {
                model = model.map(&mut FreezeEmbedding(Vec::new()));
            }
            let (logits, aux) = model.cast_parameters(dtype).forward_with_aux(tokens.clone());
            let loss = masked_cross_entropy(logits, targets.clone(), mask.clone()).mul_scalar(weight);
            let objective = aux.map_or(loss.clone(), |a| loss.clone() + a.mul_scalar(weight));
            let whole = GradientsParams::from_grads(objective.backward(), &model);
            let (value, blocks) = model.backward_by_blocks(tokens, dtype, weight, |logits| {
                masked_cross_entropy(logits, targets, mask).mul_scalar(weight)
            });
            // Dense models: bit for bit. Routed models (experts, Switch-Head) run Burn's own
            // softmax, exp and sigmoid, whose last bit can differ between the pass off the graph
            // and the graph's forward (flex and tch alike): to rounding.
            let routed = config.moe.experts > 0 || config.switch_head.experts > 0;
            let (value, loss) = (value.into_scalar::<f32>(), loss.into_scalar::<f32>());
            if routed {
                assert!((value - loss).abs() <= 1e-6 * loss.abs(), "{what}: the objective's value {value} vs {loss}");
            } else {
                assert_eq!(value.to_bits(), loss.to_bits(), "{what}: the objective's value {value} vs {loss}");
            }
            let (want, got) = (listed(&model, &whole), listed(&model, &blocks));
            let names = |l: &[(String, Vec<f32>)]| l.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            assert_eq!(names(&got), names(&want), "{what}: which parameters have a gradient");
            assert_eq!(!frozen, want.iter().any(|(n, _)| n.starts_with("embed_tokens")), "{what}");
            if config.moe.experts > 0 {
                assert!(want.iter().any(|(n, _)| n.contains("router")), "{what}: the router trains");
            }
            // Gradients: bit for bit for dense models, within 1e-5 of each parameter's largest
            // gradient for routed ones.
            let mut worst_rel = 0.0f32;
            let mut differ = Vec::new();
            for ((name, w), (_, g)) in want.iter().zip(&got) {
                if w.iter().zip(g).all(|(a, b)| a.to_bits() == b.to_bits()) {
                    continue;
                }
                let worst = w.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                let scale = w.iter().fold(0.0f32, |m, a| m.max(a.abs())).max(1e-12);
                worst_rel = worst_rel.max(worst / scale);
                if !routed || worst > 1e-5 * scale {
                    differ.push(format!("{name} by up to {worst:e} of {scale:e}"));
                }
            }
            println!("{what}: largest difference {worst_rel:e} of a parameter's largest gradient");
            assert!(differ.is_empty(), "{what}: gradients differ: {differ:?}");
        }
    }
}
