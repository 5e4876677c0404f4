//! Pairing continued runs with their parents: a run that started from another's weights (`extend`,
//! `retrofit`: `meta.parent`) is compared, seed by seed, with the run it started from — the
//! "before" of a retrofit — wherever that run lives (usually another sweep folder). A parent whose
//! numbers cannot be trusted (unfinished, weights damaged) leaves its child unpaired.

use super::{Estimate, Group, Metric, finished_numbers};
use gatelab_rundir::RunDir;
use std::collections::BTreeMap;

/// Sets each group's `parent` and `versus_parent` from its runs' parents.
pub(super) fn pair_with_parents(groups: &mut [Group]) {
    for g in groups.iter_mut() {
        let mut values: BTreeMap<Metric, Vec<(u64, f64)>> = BTreeMap::new();
        let mut names: Vec<String> = Vec::new();
        for r in g.runs.iter().filter(|r| r.counts()) {
            let Some(path) = &r.file.meta.parent else { continue };
            let dir = RunDir::new(path.clone());
            let Ok(file) = dir.read_file() else { continue };
            if !dir.is_done() {
                continue;
            }
            let Ok((_, metrics)) = finished_numbers(&dir, &file) else { continue };
            if !names.contains(&file.meta.variant) {
                names.push(file.meta.variant.clone());
            }
            for (m, v) in metrics {
                values.entry(m).or_default().push((file.meta.seed, v));
            }
        }
        g.parent = names.join(", ");
        for (m, vs) in values {
            let (Some(child), Some(parent)) = (g.estimates.get(&m), Estimate::of(&vs)) else { continue };
            if let Some(d) = child.paired_minus(&parent) {
                g.versus_parent.insert(m, d);
                g.parent_estimates.insert(m, parent);
            }
        }
    }
}
