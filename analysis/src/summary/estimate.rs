//! An estimate over seeds: the mean, Student's t 95% interval, and the paired difference of two
//! estimates seed by seed (the module docs of [`crate::summary`] say why).

use serde::{Deserialize, Serialize};

/// Two-sided 95% quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile_95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        // Cornish-Fisher expansion around the normal quantile; within 1e-3 beyond 30.
        _ => {
            let (z, d) = (1.959_964_f64, df as f64);
            z + (z.powi(3) + z) / (4.0 * d) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

/// A metric over seeds: the values, their mean and 95% t interval.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Mean.
    pub mean: f64,
    /// Lower end of the 95% interval (absent for one value).
    pub lo: Option<f64>,
    /// Upper end.
    pub hi: Option<f64>,
    /// Sample standard deviation (absent for one value).
    pub sd: Option<f64>,
    /// Values it rests on.
    pub n: usize,
    /// The values, by seed.
    pub values: Vec<(u64, f64)>,
    /// Values left out because they were NaN or infinite (a run whose analysis overflowed, say).
    #[serde(default)]
    pub non_finite: usize,
}

impl Estimate {
    /// The estimate of `values`, `None` when there are none. Non-finite values are left out
    /// and counted ([`Estimate::non_finite`]); when every value is non-finite, the mean is NaN and
    /// tables show [`NON_FINITE`].
    pub fn of(values: &[(u64, f64)]) -> Option<Estimate> {
        let v: Vec<(u64, f64)> = values.iter().copied().filter(|(_, x)| x.is_finite()).collect();
        let non_finite = values.len() - v.len();
        if v.is_empty() {
            return (non_finite > 0).then_some(Estimate {
                mean: f64::NAN,
                lo: None,
                hi: None,
                sd: None,
                n: 0,
                values: v,
                non_finite,
            });
        }
        let n = v.len();
        let mean = v.iter().map(|(_, x)| x).sum::<f64>() / n as f64;
        let (mut lo, mut hi, mut sd) = (None, None, None);
        if n > 1 {
            let s = (v.iter().map(|(_, x)| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
            let half = t_quantile_95(n - 1) * s / (n as f64).sqrt();
            (lo, hi, sd) = (Some(mean - half), Some(mean + half), Some(s));
        }
        Some(Estimate { mean, lo, hi, sd, n, values: v, non_finite })
    }

    /// The paired difference `self − base` over the seeds both have.
    pub fn paired_minus(&self, base: &Estimate) -> Option<Estimate> {
        let diffs: Vec<(u64, f64)> = self
            .values
            .iter()
            .filter_map(|(s, x)| base.values.iter().find(|(t, _)| t == s).map(|(_, b)| (*s, x - b)))
            .collect();
        Estimate::of(&diffs)
    }

    /// The interval clipped to `[lo, hi]`, the range the quantity cannot leave (a probability's
    /// [0, 1]): with few seeds a t interval can reach past it.
    pub fn clipped(mut self, (lo, hi): (f64, f64)) -> Self {
        self.lo = self.lo.map(|v| v.clamp(lo, hi));
        self.hi = self.hi.map(|v| v.clamp(lo, hi));
        self
    }

    /// `(lo, hi)` when there is an interval.
    pub fn interval(&self) -> Option<(f64, f64)> {
        Some((self.lo?, self.hi?))
    }

    /// Whether the interval lies wholly above (1) or below (−1) zero, or straddles it (0);
    /// `None` without an interval.
    pub fn sign(&self) -> Option<i8> {
        let (lo, hi) = self.interval()?;
        Some(if lo > 0.0 {
            1
        } else if hi < 0.0 {
            -1
        } else {
            0
        })
    }

    /// `mean [lo, hi]` with `digits` decimals, or the mean alone.
    pub fn show(&self, digits: usize) -> String {
        if !self.mean.is_finite() {
            return NON_FINITE.into();
        }
        let shown = match self.interval() {
            Some((lo, hi)) => format!("{:.d$} [{:.d$}, {:.d$}]", self.mean, lo, hi, d = digits),
            None => format!("{:.d$}", self.mean, d = digits),
        };
        shown + &self.left_out()
    }

    /// Like [`Estimate::show`] with a sign.
    pub fn show_signed(&self, digits: usize) -> String {
        if !self.mean.is_finite() {
            return NON_FINITE.into();
        }
        let shown = match self.interval() {
            Some((lo, hi)) => format!("{:+.d$} [{:+.d$}, {:+.d$}]", self.mean, lo, hi, d = digits),
            None => format!("{:+.d$}", self.mean, d = digits),
        };
        shown + &self.left_out()
    }

    /// ` (1 non-finite left out)`, or nothing.
    fn left_out(&self) -> String {
        if self.non_finite == 0 { String::new() } else { format!(" ({} non-finite left out)", self.non_finite) }
    }
}

/// How a table shows a mean that is NaN or infinite (a statistic of a run that diverged in its
/// analysis, say): never as a number.
pub const NON_FINITE: &str = "n/a (non-finite)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_intervals_and_paired_differences() {
        assert_eq!(t_quantile_95(2), 4.303);
        assert!((t_quantile_95(120) - 1.980).abs() < 2e-3);
        let e = Estimate::of(&[(0, 1.0), (1, 2.0), (2, 3.0)]).unwrap();
        assert_eq!(e.mean, 2.0);
        // s = 1, half-width t(2) / √3.
        let half = 4.303 / 3f64.sqrt();
        assert!((e.lo.unwrap() - (2.0 - half)).abs() < 1e-12 && (e.hi.unwrap() - (2.0 + half)).abs() < 1e-12);
        assert!(Estimate::of(&[(0, 5.0)]).unwrap().interval().is_none());
        // Paired by seed: a constant shift has no spread, whatever the seeds' own spread.
        let base = Estimate::of(&[(0, 1.0), (1, 5.0), (2, 9.0)]).unwrap();
        let gated = Estimate::of(&[(0, 0.5), (1, 4.5), (2, 8.5)]).unwrap();
        let d = gated.paired_minus(&base).unwrap();
        assert_eq!((d.mean, d.lo, d.hi, d.n), (-0.5, Some(-0.5), Some(-0.5), 3));
        assert_eq!(d.sign(), Some(-1));
        // Only the seeds both have are paired.
        let partial = Estimate::of(&[(1, 6.0), (7, 0.0)]).unwrap();
        assert_eq!(partial.paired_minus(&base).unwrap().n, 1);
    }
}
