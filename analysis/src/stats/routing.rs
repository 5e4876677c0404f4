//! Mixture-of-experts routing statistics: each expert's load (its share of the routing slots),
//! the router's entropy, the load-balancing and z-losses, and the tokens dropped (none: gatelab's
//! experts have no capacity limit; the field is kept so a capacity-limited router can fill it).

use super::{RoutingStats, flat};
use gatelab_model::Routing;

/// Running sums of one layer's routing.
#[derive(Debug, Clone, Default)]
pub(super) struct RoutingAcc {
    /// Slots each expert took.
    load: Vec<f64>,
    /// Router probability summed per expert.
    prob: Vec<f64>,
    /// Entropy of each token's router distribution, summed (nats).
    entropy: f64,
    tokens: u64,
    balance: (f64, u64),
    z: (f64, u64),
}

impl RoutingAcc {
    /// Adds one batch's routing.
    pub(super) fn add(&mut self, r: &Routing) {
        let [_, _, experts] = r.probs.dims();
        if self.load.is_empty() {
            (self.load, self.prob) = (vec![0.0; experts], vec![0.0; experts]);
        }
        let (probs, chosen) = (flat(r.probs.clone()), flat(r.chosen.clone()));
        for (p, c) in probs.chunks(experts).zip(chosen.chunks(experts)) {
            for e in 0..experts {
                self.load[e] += c[e] as f64;
                self.prob[e] += p[e] as f64;
            }
            self.entropy -= p.iter().filter(|&&x| x > 0.0).map(|&x| x as f64 * (x as f64).ln()).sum::<f64>();
            self.tokens += 1;
        }
        self.balance.0 += r.balance.clone().into_scalar::<f32>() as f64;
        self.balance.1 += 1;
        self.z.0 += r.z.clone().into_scalar::<f32>() as f64;
        self.z.1 += 1;
    }

    /// The layer's routing statistics.
    pub(super) fn finish(&self) -> RoutingStats {
        let slots: f64 = self.load.iter().sum::<f64>().max(1.0);
        let tokens = (self.tokens as f64).max(1.0);
        let experts = self.load.len().max(1) as f64;
        RoutingStats {
            load: self.load.iter().map(|l| l / slots).collect(),
            mean_probability: self.prob.iter().map(|p| p / tokens).collect(),
            entropy: self.entropy / tokens,
            max_entropy: experts.ln(),
            balance_loss: self.balance.0 / (self.balance.1 as f64).max(1.0),
            z_loss: self.z.0 / (self.z.1 as f64).max(1.0),
            dropped: 0.0,
        }
    }
}
