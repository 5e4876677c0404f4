//! Verdicts on the paper's claims from paired differences, by the rule of [`VERDICT_RULE`], and
//! the finding every report opens with: what the baseline shows.

use super::{Estimate, Group, Metric, Summary, status_words};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What gatelab concludes about one of the paper's claims from one paired difference.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The 95% interval of the paired difference excludes 0 on the side the paper reports.
    Reproduced,
    /// The interval contains 0 and is narrower than the paper's effect on both sides: an effect
    /// of the paper's size would have shown, and none did (or, for the sink, the baseline has no
    /// sink to remove).
    NotAtThisScale,
    /// The interval excludes 0 on the other side.
    Contradicted,
    /// Fewer than two seed pairs, or an interval too wide to tell.
    Inconclusive,
}

impl Verdict {
    /// Its words in tables.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotAtThisScale => "not at this scale",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The rule behind [`Verdict`], printed with every report that shows one.
pub const VERDICT_RULE: &str = "Verdicts (G1 sigmoid gates only, the configuration the paper's claims concern) compare the paired 95% interval of Δ \
with the paper's effect E (Qiu et al. 2025, Table 4, 15A2B MoE: val loss −0.045 nats (perplexity 6.026 → 5.761), F-Attn −0.419 (0.467 → 0.048), \
max act −91% of the baseline's (1053 → 94)), and with a quarter of it, E/4, the smallest difference counted as the paper's effect: reproduced if \
the interval excludes 0 on E's side and the mean reaches E/4; contradicted if it excludes 0 on the other side and the mean reaches E/4 that way; \
not at this scale if neither holds and the interval lies within ±|E| (an effect of the paper's size would have shown, and none did), or if the \
baseline has nothing to remove (F-Attn within twice chance: no sink; top-1 activation under 100× the median in every layer: no massive activation); \
inconclusive otherwise, and always with fewer than two seed pairs.";

/// The paper's effect of the G1 gate on `metric`, given the baseline's mean (relative effects
/// scale with it); `None` for metrics the paper makes no claim about.
pub fn paper_effect(metric: Metric, baseline_mean: f64) -> Option<f64> {
    match metric {
        Metric::ValLoss | Metric::BestValLoss => Some((5.761f64 / 6.026).ln()),
        Metric::FirstTokenAttention => Some(0.048 - 0.467),
        Metric::MaxActivation => Some((94.0 / 1053.0 - 1.0) * baseline_mean),
        _ => None,
    }
}

/// The verdict on the paper's claim about `metric` from the paired difference `delta`
/// (gated − baseline) and the baseline's estimate, by [`VERDICT_RULE`]. `chance` is the chance
/// level of F-Attn.
pub fn verdict(
    metric: Metric,
    delta: &Estimate,
    baseline: &BTreeMap<Metric, Estimate>,
    chance: Option<f64>,
) -> Option<Verdict> {
    let base = baseline.get(&metric)?;
    let effect = paper_effect(metric, base.mean)?;
    let nothing_to_remove = match metric {
        Metric::FirstTokenAttention => chance.is_some_and(|c| base.mean <= 2.0 * c),
        // Sun et al. measure per layer: a massive activation in any layer is one.
        Metric::MaxActivation => baseline.get(&Metric::Top1MedianPeakLayer).is_some_and(|r| r.mean < 100.0),
        _ => false,
    };
    if nothing_to_remove {
        return Some(Verdict::NotAtThisScale);
    }
    let Some((lo, hi)) = delta.interval().filter(|_| delta.n >= 2) else { return Some(Verdict::Inconclusive) };
    // Oriented so that the paper's effect is negative.
    let (lo, hi, mean, e) = if effect < 0.0 { (lo, hi, delta.mean, -effect) } else { (-hi, -lo, -delta.mean, effect) };
    Some(if hi < 0.0 && mean <= -e / 4.0 {
        Verdict::Reproduced
    } else if lo > 0.0 && mean >= e / 4.0 {
        Verdict::Contradicted
    } else if lo > -e && hi < e {
        Verdict::NotAtThisScale
    } else {
        Verdict::Inconclusive
    })
}

/// What the baseline shows, in words: the first sentence of every report.
pub fn finding(summary: &Summary) -> String {
    let plain = |g: &&Group| g.is_baseline() && g.runs[0].file.config.model.cure.is_softmax();
    let Some(base) = summary.groups.iter().find(plain).or_else(|| summary.groups.iter().find(|g| g.is_baseline()))
    else {
        return "This sweep has no ungated baseline, so it says nothing about whether a gate removes a sink.".into();
    };
    if base.done() == 0 {
        return format!(
            "The baseline ({}) has no finished run, so nothing can be said about sinks yet: {}.",
            base.name(),
            status_words(base)
        );
    }
    let (Some(chance), false) = (base.chance, base.first_token_attention_per_layer.is_empty()) else {
        return format!(
            "The baseline ({}) has finished runs but no analysis.json: run `gatelab analyze` on the sweep folder.",
            base.name()
        );
    };
    let n = base.first_token_attention_per_layer.first().map_or(0, |e| e.n);
    let seeds = if n == 1 { "one seed".to_string() } else { format!("{n} seeds") };
    let sinks: Vec<String> = base
        .first_token_attention_per_layer
        .iter()
        .enumerate()
        .filter(|(_, f)| f.mean > 2.0 * chance)
        .map(|(l, f)| format!("layer {} ({})", l + 1, f.show(3)))
        .collect();
    if sinks.is_empty() {
        let fs: Vec<String> = base.first_token_attention_per_layer.iter().map(|f| format!("{:.3}", f.mean)).collect();
        format!(
            "**The baseline shows no attention sink** ({seeds}): its first-token attention ({}) is within twice the chance level of uniform causal attention ({chance:.3}) in every layer. This sweep therefore cannot show a gate removing a sink; differences between variants below are not evidence of it.",
            fs.join(", ")
        )
    } else {
        format!(
            "The baseline has a first-token sink ({seeds}): F-Attn above twice the chance level ({chance:.3}) in {}.",
            sinks.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::Estimate;

    #[test]
    fn verdicts_follow_the_stated_rule() {
        let est =
            |v: &[f64]| Estimate::of(&v.iter().enumerate().map(|(i, x)| (i as u64, *x)).collect::<Vec<_>>()).unwrap();
        let base: BTreeMap<Metric, Estimate> = [(Metric::ValLoss, est(&[3.0, 3.0, 3.0]))].into();
        // Paper: −0.045 nats. Clearly lower: reproduced; clearly higher: contradicted.
        assert_eq!(verdict(Metric::ValLoss, &est(&[-0.10, -0.11, -0.09]), &base, None), Some(Verdict::Reproduced));
        assert_eq!(verdict(Metric::ValLoss, &est(&[0.10, 0.11, 0.09]), &base, None), Some(Verdict::Contradicted));
        // A difference far below the paper's (a ten-thousandth of a nat), however sure: not at this scale.
        assert_eq!(
            verdict(Metric::ValLoss, &est(&[0.0001, 0.00011, 0.00012]), &base, None),
            Some(Verdict::NotAtThisScale)
        );
        assert_eq!(verdict(Metric::ValLoss, &est(&[0.001, -0.001, 0.0]), &base, None), Some(Verdict::NotAtThisScale));
        // Around 0 and wide, or one seed: cannot tell.
        assert_eq!(verdict(Metric::ValLoss, &est(&[0.5, -0.5, 0.1]), &base, None), Some(Verdict::Inconclusive));
        assert_eq!(verdict(Metric::ValLoss, &est(&[-0.5]), &base, None), Some(Verdict::Inconclusive));
        // No sink in the baseline, or no massive activation: nothing to remove.
        let weak: BTreeMap<Metric, Estimate> = [
            (Metric::FirstTokenAttention, est(&[0.05, 0.06, 0.05])),
            (Metric::MaxActivation, est(&[2.0, 2.1, 1.9])),
            (Metric::Top1Median, est(&[8.0, 9.0, 8.5])),
            (Metric::Top1MedianPeakLayer, est(&[12.0, 13.0, 12.5])),
        ]
        .into();
        assert_eq!(
            verdict(Metric::FirstTokenAttention, &est(&[-0.02, -0.02, -0.03]), &weak, Some(0.035)),
            Some(Verdict::NotAtThisScale)
        );
        assert_eq!(
            verdict(Metric::MaxActivation, &est(&[-1.5, -1.6, -1.4]), &weak, None),
            Some(Verdict::NotAtThisScale)
        );
        assert_eq!(verdict(Metric::Sink, &est(&[-0.02, -0.02, -0.03]), &weak, None), None, "no claim about Sink");
        // A peak of 150x the median in one layer is a massive activation, though the mean over
        // layers stays under 100: the gate has something to remove.
        let one_layer: BTreeMap<Metric, Estimate> = [
            (Metric::MaxActivation, est(&[470.0, 480.0, 460.0])),
            (Metric::Top1Median, est(&[60.0, 62.0, 58.0])),
            (Metric::Top1MedianPeakLayer, est(&[150.0, 158.0, 142.0])),
        ]
        .into();
        assert_eq!(
            verdict(Metric::MaxActivation, &est(&[-430.0, -440.0, -420.0]), &one_layer, None),
            Some(Verdict::Reproduced)
        );
    }
}
