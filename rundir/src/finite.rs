//! Non-finite numbers in the JSON files of a run folder. JSON has no NaN or ∞, and serde_json
//! writes them as `null`, which then fails to read back as a number: one NaN statistic would make
//! a whole `analysis.json` unreadable. Fields marked `#[serde(with = "gatelab_rundir::finite")]`
//! write a non-finite number as the string `"NaN"`, `"Infinity"` or `"-Infinity"` (the spellings
//! Python's `float()` and JavaScript's `Number()` read) and read back those strings, numbers, and
//! `null` (as NaN, how earlier files stored them).
//!
//! It applies to `f64` and, nested, to `Option`, `Vec` and arrays of them.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The marker of a non-finite number.
pub fn marker(x: f64) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// A type whose numbers may be non-finite.
pub trait Floats: Sized {
    /// Writes it, non-finite numbers as markers.
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
    /// Reads it, markers and `null` as non-finite numbers.
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// `#[serde(with = "finite")]`: writes.
pub fn serialize<T: Floats, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    value.write(s)
}

/// `#[serde(with = "finite")]`: reads.
pub fn deserialize<'de, T: Floats, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    T::read(d)
}

struct Out<'a, T>(&'a T);

impl<T: Floats> Serialize for Out<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.write(s)
    }
}

struct In<T>(T);

impl<'de, T: Floats> Deserialize<'de> for In<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::read(d).map(In)
    }
}

struct NumberOrMarker;

impl Visitor<'_> for NumberOrMarker {
    type Value = f64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
    fn visit_none<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

impl Floats for f64 {
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_finite() { s.serialize_f64(*self) } else { s.serialize_str(marker(*self)) }
    }
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberOrMarker)
    }
}

impl<T: Floats> Floats for Option<T> {
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Some(v) => s.serialize_some(&Out(v)),
            None => s.serialize_none(),
        }
    }
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<In<T>>::deserialize(d)?.map(|v| v.0))
    }
}

impl<T: Floats> Floats for Vec<T> {
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Out))
    }
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<In<T>>::deserialize(d)?.into_iter().map(|v| v.0).collect())
    }
}

impl<T: Floats, const N: usize> Floats for [T; N] {
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Out))
    }
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<T> = Vec::<In<T>>::deserialize(d)?.into_iter().map(|v| v.0).collect();
        let len = v.len();
        v.try_into().map_err(|_| de::Error::invalid_length(len, &format!("{N} numbers").as_str()))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug)]
    struct Row {
        #[serde(with = "crate::finite")]
        x: f64,
        #[serde(with = "crate::finite")]
        o: Option<f64>,
        #[serde(with = "crate::finite")]
        v: Vec<f64>,
        #[serde(with = "crate::finite")]
        a: [f64; 3],
        #[serde(with = "crate::finite", default)]
        missing: Option<[f64; 3]>,
    }

    #[test]
    fn non_finite_numbers_are_markers_that_read_back() {
        let row = Row {
            x: f64::NAN,
            o: Some(f64::INFINITY),
            v: vec![1.5, f64::NEG_INFINITY],
            a: [0.0, f64::NAN, 2.0],
            missing: None,
        };
        let text = serde_json::to_string(&row).unwrap();
        assert_eq!(text, r#"{"x":"NaN","o":"Infinity","v":[1.5,"-Infinity"],"a":[0.0,"NaN",2.0],"missing":null}"#);
        let back: Row = serde_json::from_str(&text).unwrap();
        assert!(back.x.is_nan() && back.o == Some(f64::INFINITY) && back.v[1] == f64::NEG_INFINITY);
        assert!(back.a[1].is_nan() && back.a[2] == 2.0 && back.missing.is_none());
        // Earlier files wrote null; a missing optional field is none; integers are numbers.
        let old: Row = serde_json::from_str(r#"{"x":null,"o":null,"v":[3],"a":[1,2,3]}"#).unwrap();
        assert!(old.x.is_nan() && old.o.is_none() && old.v == [3.0]);
        assert!(serde_json::from_str::<Row>(r#"{"x":"nope","o":null,"v":[],"a":[1,2,3]}"#).is_err());
        assert!(serde_json::from_str::<Row>(r#"{"x":1,"o":null,"v":[],"a":[1,2]}"#).is_err());
    }
}
