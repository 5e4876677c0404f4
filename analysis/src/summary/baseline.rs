//! Each configuration's baseline, and the paired differences to it (the module docs of
//! [`super`] say why pairs by seed).

use super::{Estimate, Group, Metric, group_key, pool_key, verdict};
use gatelab_model::GateSpec;
use std::collections::BTreeMap;

/// The baseline of the same configuration: the ungated group whose config (less the seed) is this
/// group's with the gate removed, on the same backend. A learning-rate sweep pairs each gate with
/// the baseline of its own learning rate; a size ladder, with the baseline of its own size.
///
/// A sink cure without a gate is paired with the plain-softmax configuration that is otherwise
/// identical (the cure's own effect); a cure with a gate, with the same cure without the gate (the
/// gate's effect on top of the cure).
///
/// A run whose grid names its baseline (`meta.baseline`: a paper row that also changes the heads,
/// the experts or the parameter count) is paired with the group holding that run instead.
pub(super) fn pair_with_baselines(groups: &mut [Group]) {
    let reference_key = |g: &Group, softmax: bool| {
        let file = &g.runs[0].file;
        let mut config = file.config_without_seed();
        config.model.gate = GateSpec::BASELINE;
        config.model.extra_gates.clear();
        if softmax {
            config.model.cure = gatelab_model::SinkCure::Softmax;
        }
        pool_key(config, file)
    };
    // Each group's key once (a continued run's reads its parent's config.json).
    let keys: Vec<String> = groups.iter().map(|g| group_key(&g.runs[0].file)).collect();
    let declared: Vec<Option<usize>> = (0..groups.len())
        .map(|i| {
            let want = groups[i].runs.iter().find_map(|r| r.file.meta.baseline.as_ref())?;
            (0..groups.len()).find(|&b| b != i && groups[b].runs.iter().any(|r| r.file.meta.hash == want.hash))
        })
        .collect();
    for i in 0..groups.len() {
        let cured = !groups[i].runs[0].file.config.model.cure.is_softmax();
        let found = declared[i].or_else(|| {
            if groups[i].is_baseline() && !cured {
                return None;
            }
            let want = reference_key(&groups[i], groups[i].is_baseline());
            (0..groups.len()).find(|&b| b != i && groups[b].is_baseline() && keys[b] == want)
        });
        let Some(b) = found else {
            continue;
        };
        groups[i].baseline = Some(b);
        let pairs: BTreeMap<Metric, Estimate> = groups[i]
            .estimates
            .iter()
            .filter_map(|(m, e)| {
                // A difference of two values in [lo, hi] lies in [lo − hi, hi − lo].
                let (lo, hi) = m.bounds().unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
                Some((*m, e.paired_minus(groups[b].estimates.get(m)?)?.clipped((lo - hi, hi - lo))))
            })
            .collect();
        if groups[i].is_g1_sigmoid() {
            let chance = groups[b].chance;
            groups[i].verdicts =
                pairs.iter().filter_map(|(m, d)| Some((*m, verdict(*m, d, &groups[b].estimates, chance)?))).collect();
        }
        groups[i].versus_baseline = pairs;
    }
}
