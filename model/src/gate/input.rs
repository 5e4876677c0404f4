//! How much of the layer input a gate reads ([`InputDims`]): all of it (the paper), or only its
//! first dimensions, as the gates since the paper do. modded-nanogpt (KellerJordan/modded-nanogpt
//! PR 117) gates each head from the first 12 of 768 residual dimensions, and openai/parameter-golf
//! uses `2σ(W·x[:, :12])`.
//!
//! JSON: absent or `"full"` for every dimension, a number `k` for the first `k`, or `"d/n"` for
//! the first `d_model / n` (a width that scales with the model, which reads better in a grid
//! that varies `d_model`).

use crate::error::ConfigError;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// The dimensions of the pre-normed layer input `X` that the gate's logits `X·W_θ` read: always
/// the first ones, `X[..., :k]`, so `W_θ` is `k × width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InputDims {
    /// All `d_model` dimensions (the paper's gate; left out of the JSON).
    #[default]
    Full,
    /// The first `k` dimensions.
    First(usize),
    /// The first `d_model / n` dimensions (`n` must divide `d_model`).
    Fraction(usize),
}

impl InputDims {
    /// Whether it is the default (left out of the JSON, so earlier configs keep their hashes).
    pub fn is_full(&self) -> bool {
        *self == InputDims::Full
    }

    /// The number of dimensions read by a model of width `d_model`, or why that width is not
    /// one (the error names `field`).
    pub fn resolve(self, d_model: usize, field: &str) -> Result<usize, ConfigError> {
        match self {
            InputDims::Full => Ok(d_model),
            InputDims::First(k) if k == 0 || k > d_model => Err(ConfigError::new(
                field,
                format!(
                    "{k} is out of range: the gate reads the first k of d_model = {d_model} dimensions, 1 ≤ k ≤ {d_model}"
                ),
            )),
            InputDims::First(k) => Ok(k),
            InputDims::Fraction(n) if n == 0 || !d_model.is_multiple_of(n) => Err(ConfigError::new(
                field,
                format!("\"d/{n}\" is not a whole number of dimensions: n must divide d_model = {d_model}"),
            )),
            InputDims::Fraction(n) => Ok(d_model / n),
        }
    }

    /// The width read, for counting parameters of a config that may not be valid (`d_model` when
    /// it is not a width).
    pub fn width_or_full(self, d_model: usize) -> usize {
        self.resolve(d_model, "").unwrap_or(d_model)
    }

    /// A short label: `x[:12]`, `x[:d/4]`, empty for the full input.
    pub fn label(self) -> String {
        match self {
            InputDims::Full => String::new(),
            InputDims::First(k) => format!("x[:{k}]"),
            InputDims::Fraction(n) => format!("x[:d/{n}]"),
        }
    }
}

impl Serialize for InputDims {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            InputDims::Full => s.serialize_str("full"),
            InputDims::First(k) => s.serialize_u64(*k as u64),
            InputDims::Fraction(n) => s.serialize_str(&format!("d/{n}")),
        }
    }
}

impl<'de> Deserialize<'de> for InputDims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Dims;
        impl Visitor<'_> for Dims {
            type Value = InputDims;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"full\", a number of dimensions k ≥ 1, or \"d/n\" (the first d_model/n)")
            }
            fn visit_u64<E: de::Error>(self, k: u64) -> Result<InputDims, E> {
                usize::try_from(k).map(InputDims::First).map_err(|_| E::custom(format!("{k} dimensions is too many")))
            }
            fn visit_i64<E: de::Error>(self, k: i64) -> Result<InputDims, E> {
                Err(E::custom(format!("{k} is not a number of dimensions (k ≥ 1)")))
            }
            fn visit_f64<E: de::Error>(self, k: f64) -> Result<InputDims, E> {
                Err(E::custom(format!("{k} is not a whole number of dimensions; for a fraction write \"d/n\"")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<InputDims, E> {
                if s == "full" {
                    return Ok(InputDims::Full);
                }
                let n = s.strip_prefix("d/").and_then(|n| n.parse::<usize>().ok()).filter(|&n| n >= 1);
                n.map(InputDims::Fraction).ok_or_else(|| E::custom(format!("{s:?} is not \"full\" or \"d/n\" (n ≥ 1)")))
            }
        }
        d.deserialize_any(Dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms_round_trip_and_resolve() {
        for (text, dims, width) in [
            (r#""full""#, InputDims::Full, 64),
            ("12", InputDims::First(12), 12),
            (r#""d/4""#, InputDims::Fraction(4), 16),
        ] {
            let parsed: InputDims = serde_json::from_str(text).unwrap();
            assert_eq!(parsed, dims);
            assert_eq!(serde_json::to_string(&parsed).unwrap(), text);
            assert_eq!(parsed.resolve(64, "gate.input_dims").unwrap(), width);
        }
        for bad in ["0.5", "-3", r#""half""#, r#""d/0""#] {
            assert!(serde_json::from_str::<InputDims>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn widths_outside_the_model_are_refused_naming_the_field() {
        for dims in [InputDims::First(0), InputDims::First(65), InputDims::Fraction(3)] {
            let err = dims.resolve(64, "gate.input_dims").unwrap_err();
            assert_eq!(err.field, "gate.input_dims");
            assert!(err.to_string().contains("64"), "{err}");
        }
        assert_eq!(InputDims::First(64).resolve(64, "f").unwrap(), 64);
    }
}
