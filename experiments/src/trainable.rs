//! Which parameters train (`train.trainable`): the others are frozen before the first step, so
//! they get no gradient, the optimiser keeps no state for them (Burn's optimiser steps only the
//! parameters that have a gradient), and they end the run with the values they started with.
//!
//! Parameters are named by Burn's module paths (`layers.0.attn.gate.gate_proj.weight`,
//! `layers.1.ffn_norm.gamma`, `norm.gamma`), which [`parameters`] lists for a model.

use crate::error::{ExperimentError, Result};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;
use gatelab_model::Transformer;
use gatelab_rundir::config::Trainable;

/// One parameter tensor: its module path and element count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// Burn's module path.
    pub path: String,
    /// Elements.
    pub numel: usize,
}

/// Every float parameter of `model`, in module order.
pub fn parameters(model: &Transformer) -> Vec<Parameter> {
    struct List {
        path: Vec<String>,
        out: Vec<Parameter>,
    }
    impl ModuleVisitor for List {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out.push(Parameter { path: self.path.join("."), numel: param.lazy_shape().num_elements() });
        }
    }
    let mut list = List { path: Vec::new(), out: Vec::new() };
    model.visit(&mut list);
    list.out
}

/// What `train.trainable` selects of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Paths of the parameters that train.
    pub trainable: Vec<String>,
    /// Elements that train.
    pub trainable_params: usize,
    /// Elements in all.
    pub total_params: usize,
}

/// The parameters of `model` that `trainable` selects; a pattern that matches no parameter is
/// refused, naming it (and the model's parameter paths, to pick from).
pub fn select(model: &Transformer, trainable: &Trainable) -> Result<Selection> {
    let params = parameters(model);
    let patterns = trainable.patterns();
    // A named set's extra-gates pattern matches only in a model with several gates.
    let optional = |p: &str| matches!(trainable, Trainable::Set(_)) && p.contains(".extra_gates.");
    for pattern in patterns.iter().filter(|p| !optional(p)) {
        if !params.iter().any(|p| Trainable::matches(pattern, &p.path)) {
            let what = if trainable.is_all() || matches!(trainable, Trainable::Patterns(_)) {
                format!("the pattern {pattern:?} matches no parameter")
            } else {
                format!("{trainable} selects no parameter of this model ({pattern:?} matches none): it has no gate")
            };
            let paths: Vec<&str> = params.iter().map(|p| p.path.as_str()).collect();
            return Err(ExperimentError::option(
                "train.trainable",
                format!("{what} (parameters: {})", paths.join(", ")),
            ));
        }
    }
    let chosen: Vec<&Parameter> =
        params.iter().filter(|p| patterns.iter().any(|pattern| Trainable::matches(pattern, &p.path))).collect();
    Ok(Selection {
        trainable: chosen.iter().map(|p| p.path.clone()).collect(),
        trainable_params: chosen.iter().map(|p| p.numel).sum(),
        total_params: params.iter().map(|p| p.numel).sum(),
    })
}

/// `model` with every parameter outside `selection` frozen (it requires no gradient).
pub fn freeze(model: Transformer, selection: &Selection) -> Transformer {
    struct Freeze<'a> {
        path: Vec<String>,
        trainable: &'a [String],
    }
    impl ModuleMapper for Freeze<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let path = self.path.join(".");
            if self.trainable.contains(&path) { param } else { param.set_require_grad(false) }
        }
    }
    model.map(&mut Freeze { path: Vec::new(), trainable: &selection.trainable })
}

/// What `config.train.trainable` selects of the model `config` builds (built on flex with lazy
/// parameters: nothing is allocated but the few eager ones). Checked before a run is planned.
pub fn of_config(config: &gatelab_rundir::RunConfig) -> Result<Selection> {
    let model = config.model.init(&burn::tensor::Device::flex())?;
    select(&model, &config.train.trainable)
}
