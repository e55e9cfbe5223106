//! Payloads (the text chunk plus typed fields), payload indexes and filters.
//!
//! A payload is stored as one JSON object: `"text"` holds the chunk, every other key a field
//! (string = keyword, integer, float). A field can be filtered on only when the collection
//! declares it ([`FieldSchema`]); each segment then keeps a [`FieldIndex`] over it, and
//! [`Filter::eval`] turns a filter into a roaring set of the segment's internal ids.

use crate::error::{Result, ServerError};
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The payload key holding the text chunk (not usable as a field name).
pub const TEXT_KEY: &str = "text";
/// Longest field name accepted.
pub const MAX_FIELD_NAME: usize = 256;

/// A field's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Exact-match strings.
    Keyword,
    /// i64.
    Integer,
    /// f64.
    Float,
}

/// A declared, indexed payload field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSchema {
    /// Field name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: FieldType,
}

impl FieldSchema {
    /// Checks the name.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.name.len() > MAX_FIELD_NAME || self.name == TEXT_KEY {
            return Err(ServerError::invalid(format!(
                "field name {:?} must be 1..={MAX_FIELD_NAME} bytes and not {TEXT_KEY:?}",
                self.name
            )));
        }
        Ok(())
    }
}

/// One field value.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// A keyword.
    Keyword(String),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
}

impl FieldValue {
    fn to_json(&self) -> serde_json::Value {
        match self {
            FieldValue::Keyword(s) => serde_json::Value::String(s.clone()),
            FieldValue::Integer(i) => serde_json::Value::from(*i),
            FieldValue::Float(f) => serde_json::Value::from(*f),
        }
    }

    fn from_json(v: &serde_json::Value) -> Option<FieldValue> {
        match v {
            serde_json::Value::String(s) => Some(FieldValue::Keyword(s.clone())),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(FieldValue::Integer)
                .or_else(|| n.as_f64().map(FieldValue::Float)),
            _ => None,
        }
    }

    /// The value as a number (integers widen), for ranges.
    fn as_f64(&self) -> Option<f64> {
        match self {
            FieldValue::Integer(i) => Some(*i as f64),
            FieldValue::Float(f) => Some(*f),
            FieldValue::Keyword(_) => None,
        }
    }
}

/// A point's payload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Payload {
    /// The text chunk.
    pub text: String,
    /// Typed fields.
    pub fields: BTreeMap<String, FieldValue>,
}

impl Payload {
    /// The stored JSON object.
    pub fn to_json(&self) -> String {
        let mut m = serde_json::Map::new();
        m.insert(
            TEXT_KEY.into(),
            serde_json::Value::String(self.text.clone()),
        );
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.to_json());
        }
        serde_json::Value::Object(m).to_string()
    }

    /// Reads a stored (or bulk-imported) JSON object: `"text"` is the chunk, other string and
    /// number keys are fields; anything else is ignored.
    pub fn from_json(v: &serde_json::Value) -> Payload {
        let mut p = Payload::default();
        if let serde_json::Value::Object(m) = v {
            for (k, v) in m {
                if k == TEXT_KEY {
                    if let serde_json::Value::String(s) = v {
                        p.text = s.clone();
                    }
                } else if let Some(f) = FieldValue::from_json(v) {
                    p.fields.insert(k.clone(), f);
                }
            }
        }
        p
    }

    /// Checks the declared fields this payload sets have the declared type (an integer is
    /// accepted for a float field).
    pub fn check(&mut self, schema: &[FieldSchema]) -> Result<()> {
        for f in schema {
            let Some(v) = self.fields.get_mut(&f.name) else {
                continue;
            };
            let ok = match (f.ty, &*v) {
                (FieldType::Keyword, FieldValue::Keyword(_)) => true,
                (FieldType::Integer, FieldValue::Integer(_)) => true,
                (FieldType::Float, FieldValue::Float(x)) => x.is_finite(),
                (FieldType::Float, FieldValue::Integer(i)) => {
                    *v = FieldValue::Float(*i as f64);
                    true
                }
                _ => false,
            };
            if !ok {
                return Err(ServerError::invalid(format!(
                    "field {:?} = {v:?} is not a {:?}",
                    f.name, f.ty
                )));
            }
        }
        Ok(())
    }
}

/// A filter over payload fields.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// The field equals one of the values.
    Match {
        /// Field.
        field: String,
        /// Accepted values.
        any: Vec<FieldValue>,
    },
    /// The numeric field lies in the range (bounds: value and whether inclusive).
    Range {
        /// Field.
        field: String,
        /// Lower bound.
        lo: Option<(f64, bool)>,
        /// Upper bound.
        hi: Option<(f64, bool)>,
    },
    /// All hold.
    And(Vec<Filter>),
    /// Any holds.
    Or(Vec<Filter>),
    /// Does not hold.
    Not(Box<Filter>),
}

/// Deepest filter nesting accepted.
pub const MAX_FILTER_DEPTH: usize = 32;

fn in_range(x: f64, lo: Option<(f64, bool)>, hi: Option<(f64, bool)>) -> bool {
    let above = match lo {
        Some((l, true)) => x >= l,
        Some((l, false)) => x > l,
        None => true,
    };
    let below = match hi {
        Some((h, true)) => x <= h,
        Some((h, false)) => x < h,
        None => true,
    };
    above && below
}

impl Filter {
    /// Checks every field named is declared with a type the condition fits.
    pub fn validate(&self, schema: &[FieldSchema]) -> Result<()> {
        self.validate_at(schema, 0)
    }

    fn validate_at(&self, schema: &[FieldSchema], depth: usize) -> Result<()> {
        if depth > MAX_FILTER_DEPTH {
            return Err(ServerError::invalid(format!(
                "filter nested deeper than {MAX_FILTER_DEPTH}"
            )));
        }
        let ty = |field: &str| {
            schema
                .iter()
                .find(|f| f.name == field)
                .map(|f| f.ty)
                .ok_or_else(|| {
                    ServerError::invalid(format!(
                        "filter on field {field:?}, which has no payload index \
                         (declare it at create or with CreateFieldIndex)"
                    ))
                })
        };
        match self {
            Filter::Match { field, any } => {
                let t = ty(field)?;
                if any.is_empty() {
                    return Err(ServerError::invalid(format!(
                        "match on {field:?} names no value"
                    )));
                }
                for v in any {
                    let ok = matches!(
                        (t, v),
                        (FieldType::Keyword, FieldValue::Keyword(_))
                            | (FieldType::Integer, FieldValue::Integer(_))
                    );
                    if !ok {
                        return Err(ServerError::invalid(format!(
                            "match on {t:?} field {field:?} with {v:?} (match takes keyword or \
                             integer values of the field's type; use a range for floats)"
                        )));
                    }
                }
            }
            Filter::Range { field, lo, hi } => {
                let t = ty(field)?;
                if t == FieldType::Keyword {
                    return Err(ServerError::invalid(format!(
                        "range on keyword field {field:?}"
                    )));
                }
                for (x, _) in lo.iter().chain(hi) {
                    if x.is_nan() {
                        return Err(ServerError::invalid(format!("NaN bound on {field:?}")));
                    }
                }
            }
            Filter::And(fs) | Filter::Or(fs) => {
                for f in fs {
                    f.validate_at(schema, depth + 1)?;
                }
            }
            Filter::Not(f) => f.validate_at(schema, depth + 1)?,
        }
        Ok(())
    }

    /// Whether `p` passes.
    pub fn matches(&self, p: &Payload) -> bool {
        match self {
            Filter::Match { field, any } => p.fields.get(field).is_some_and(|v| any.contains(v)),
            Filter::Range { field, lo, hi } => p
                .fields
                .get(field)
                .and_then(FieldValue::as_f64)
                .is_some_and(|x| in_range(x, *lo, *hi)),
            Filter::And(fs) => fs.iter().all(|f| f.matches(p)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(p)),
            Filter::Not(f) => !f.matches(p),
        }
    }

    /// The internal ids among `0..n` that pass, from the segment's field indexes.
    pub fn eval(&self, idx: &FieldIndexes, n: u32) -> RoaringBitmap {
        match self {
            Filter::Match { field, any } => match idx.get(field) {
                Some(fi) => any
                    .iter()
                    .map(|v| fi.equal(v))
                    .fold(RoaringBitmap::new(), |a, b| a | b),
                None => RoaringBitmap::new(),
            },
            Filter::Range { field, lo, hi } => match idx.get(field) {
                Some(fi) => fi.range(*lo, *hi),
                None => RoaringBitmap::new(),
            },
            Filter::And(fs) => {
                let mut it = fs.iter();
                let Some(first) = it.next() else {
                    return full(n);
                };
                let mut acc = first.eval(idx, n);
                for f in it {
                    if acc.is_empty() {
                        break;
                    }
                    acc &= f.eval(idx, n);
                }
                acc
            }
            Filter::Or(fs) => fs
                .iter()
                .map(|f| f.eval(idx, n))
                .fold(RoaringBitmap::new(), |a, b| a | b),
            Filter::Not(f) => full(n) - f.eval(idx, n),
        }
    }
}

/// The set `0..n`.
pub fn full(n: u32) -> RoaringBitmap {
    let mut b = RoaringBitmap::new();
    b.insert_range(0..n);
    b
}

/// One field's index over a segment's internal ids.
#[derive(Debug)]
pub enum FieldIndex {
    /// Keyword -> ids.
    Keyword(HashMap<String, RoaringBitmap>),
    /// (value, id) sorted by value.
    Integer(Vec<(i64, u32)>),
    /// (value, id) sorted by value.
    Float(Vec<(f64, u32)>),
}

impl FieldIndex {
    /// Indexes field `f` over `payloads` (internal id = position).
    pub fn build<'a>(f: &FieldSchema, payloads: impl Iterator<Item = (u32, &'a Payload)>) -> Self {
        match f.ty {
            FieldType::Keyword => {
                let mut m: HashMap<String, RoaringBitmap> = HashMap::new();
                for (i, p) in payloads {
                    if let Some(FieldValue::Keyword(s)) = p.fields.get(&f.name) {
                        m.entry(s.clone()).or_default().insert(i);
                    }
                }
                FieldIndex::Keyword(m)
            }
            FieldType::Integer => {
                let mut v: Vec<(i64, u32)> = payloads
                    .filter_map(|(i, p)| match p.fields.get(&f.name) {
                        Some(FieldValue::Integer(x)) => Some((*x, i)),
                        _ => None,
                    })
                    .collect();
                v.sort_unstable();
                FieldIndex::Integer(v)
            }
            FieldType::Float => {
                let mut v: Vec<(f64, u32)> = payloads
                    .filter_map(|(i, p)| p.fields.get(&f.name).and_then(|x| Some((x.as_f64()?, i))))
                    .filter(|(x, _)| x.is_finite())
                    .collect();
                v.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                FieldIndex::Float(v)
            }
        }
    }

    fn equal(&self, v: &FieldValue) -> RoaringBitmap {
        match (self, v) {
            (FieldIndex::Keyword(m), FieldValue::Keyword(s)) => {
                m.get(s).cloned().unwrap_or_default()
            }
            (FieldIndex::Integer(xs), FieldValue::Integer(x)) => {
                let a = xs.partition_point(|e| e.0 < *x);
                let b = xs.partition_point(|e| e.0 <= *x);
                xs[a..b].iter().map(|e| e.1).collect()
            }
            _ => RoaringBitmap::new(),
        }
    }

    fn range(&self, lo: Option<(f64, bool)>, hi: Option<(f64, bool)>) -> RoaringBitmap {
        match self {
            FieldIndex::Integer(xs) => {
                let a = xs.partition_point(|e| !in_range(e.0 as f64, lo, None));
                xs[a..]
                    .iter()
                    .take_while(|e| in_range(e.0 as f64, None, hi))
                    .map(|e| e.1)
                    .collect()
            }
            FieldIndex::Float(xs) => {
                let a = xs.partition_point(|e| !in_range(e.0, lo, None));
                xs[a..]
                    .iter()
                    .take_while(|e| in_range(e.0, None, hi))
                    .map(|e| e.1)
                    .collect()
            }
            FieldIndex::Keyword(_) => RoaringBitmap::new(),
        }
    }

    /// Approximate RAM held.
    pub fn bytes(&self) -> u64 {
        match self {
            FieldIndex::Keyword(m) => m
                .iter()
                .map(|(k, b)| (k.len() + 48) as u64 + b.serialized_size() as u64)
                .sum(),
            FieldIndex::Integer(v) => (v.capacity() * 16) as u64,
            FieldIndex::Float(v) => (v.capacity() * 16) as u64,
        }
    }
}

/// A segment's field indexes, by field name.
pub type FieldIndexes = HashMap<String, FieldIndex>;

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Vec<FieldSchema> {
        vec![
            FieldSchema {
                name: "lang".into(),
                ty: FieldType::Keyword,
            },
            FieldSchema {
                name: "year".into(),
                ty: FieldType::Integer,
            },
            FieldSchema {
                name: "score".into(),
                ty: FieldType::Float,
            },
        ]
    }

    fn payload(i: u32) -> Payload {
        let mut p = Payload {
            text: format!("chunk {i}"),
            ..Default::default()
        };
        p.fields.insert(
            "lang".into(),
            FieldValue::Keyword(["en", "de", "fr"][i as usize % 3].into()),
        );
        p.fields
            .insert("year".into(), FieldValue::Integer(2000 + i as i64 % 20));
        p.fields
            .insert("score".into(), FieldValue::Float(i as f64 / 10.0));
        p
    }

    #[test]
    fn index_evaluation_agrees_with_per_point_matching() {
        let ps: Vec<Payload> = (0..300).map(payload).collect();
        let idx: FieldIndexes = schema()
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    FieldIndex::build(f, ps.iter().enumerate().map(|(i, p)| (i as u32, p))),
                )
            })
            .collect();
        let filters = vec![
            Filter::Match {
                field: "lang".into(),
                any: vec![FieldValue::Keyword("de".into())],
            },
            Filter::Match {
                field: "year".into(),
                any: vec![FieldValue::Integer(2003), FieldValue::Integer(2011)],
            },
            Filter::Range {
                field: "score".into(),
                lo: Some((5.0, true)),
                hi: Some((9.5, false)),
            },
            Filter::And(vec![
                Filter::Range {
                    field: "year".into(),
                    lo: Some((2005.0, false)),
                    hi: None,
                },
                Filter::Not(Box::new(Filter::Match {
                    field: "lang".into(),
                    any: vec![FieldValue::Keyword("en".into())],
                })),
            ]),
            Filter::Or(vec![]),
            Filter::And(vec![]),
        ];
        for f in filters {
            f.validate(&schema()).expect("valid");
            let by_index: Vec<u32> = f.eval(&idx, 300).iter().collect();
            let by_point: Vec<u32> = (0..300).filter(|&i| f.matches(&ps[i as usize])).collect();
            assert_eq!(by_index, by_point, "{f:?}");
        }
    }

    #[test]
    fn bad_filters_name_the_problem() {
        let e = Filter::Match {
            field: "nope".into(),
            any: vec![FieldValue::Integer(1)],
        }
        .validate(&schema())
        .expect_err("unindexed");
        assert!(
            e.to_string()
                .contains("\"nope\", which has no payload index"),
            "{e}"
        );
        let e = Filter::Range {
            field: "lang".into(),
            lo: None,
            hi: Some((1.0, true)),
        }
        .validate(&schema())
        .expect_err("keyword range");
        assert!(e.to_string().contains("range on keyword field"), "{e}");
    }

    #[test]
    fn payload_json_round_trips_and_types_are_checked() {
        let p = payload(7);
        let back = Payload::from_json(&serde_json::from_str(&p.to_json()).expect("json"));
        assert_eq!(back, p);
        let mut bad = payload(1);
        bad.fields
            .insert("year".into(), FieldValue::Keyword("x".into()));
        assert!(bad.check(&schema()).is_err());
    }
}
