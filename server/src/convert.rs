//! Conversions between the wire types (`pb`) and the engine's.

use crate::engine::collection::{Hit, PointData, QueryStats};
use crate::engine::payload::{FieldSchema, FieldType, FieldValue, Filter, Payload};
use crate::engine::{CollectionConfig, IndexKind, IndexParams};
use crate::error::{Result, ServerError};
use crate::pb;
use quiver_index::{Metric, SearchParams};

/// A wire value as a field value; `field` names it in the error.
pub fn value_from_pb(field: &str, v: pb::Value) -> Result<FieldValue> {
    match v.kind {
        Some(pb::value::Kind::Keyword(s)) => Ok(FieldValue::Keyword(s)),
        Some(pb::value::Kind::Integer(i)) => Ok(FieldValue::Integer(i)),
        Some(pb::value::Kind::Float(f)) if f.is_finite() => Ok(FieldValue::Float(f)),
        Some(pb::value::Kind::Float(f)) => Err(ServerError::invalid(format!(
            "field {field:?} = {f}: floats must be finite"
        ))),
        None => Err(ServerError::invalid(format!(
            "field {field:?} has no value"
        ))),
    }
}

fn value_to_pb(v: &FieldValue) -> pb::Value {
    pb::Value {
        kind: Some(match v {
            FieldValue::Keyword(s) => pb::value::Kind::Keyword(s.clone()),
            FieldValue::Integer(i) => pb::value::Kind::Integer(*i),
            FieldValue::Float(f) => pb::value::Kind::Float(*f),
        }),
    }
}

/// Metric from the wire.
pub fn metric_from_pb(m: i32) -> Result<Metric> {
    match pb::Metric::try_from(m) {
        Ok(pb::Metric::L2) => Ok(Metric::L2),
        Ok(pb::Metric::Ip) => Ok(Metric::Ip),
        Ok(pb::Metric::Cosine) => Ok(Metric::Cosine),
        _ => Err(ServerError::invalid(format!(
            "metric {m} is not one of L2 (1), IP (2), COSINE (3)"
        ))),
    }
}

fn metric_to_pb(m: Metric) -> pb::Metric {
    match m {
        Metric::L2 => pb::Metric::L2,
        Metric::Ip => pb::Metric::Ip,
        Metric::Cosine => pb::Metric::Cosine,
    }
}

fn field_type_from_pb(name: &str, t: i32) -> Result<FieldType> {
    match pb::FieldType::try_from(t) {
        Ok(pb::FieldType::Keyword) => Ok(FieldType::Keyword),
        Ok(pb::FieldType::Integer) => Ok(FieldType::Integer),
        Ok(pb::FieldType::Float) => Ok(FieldType::Float),
        _ => Err(ServerError::invalid(format!(
            "field {name:?}: type {t} is not KEYWORD (1), INTEGER (2) or FLOAT (3)"
        ))),
    }
}

fn field_type_to_pb(t: FieldType) -> pb::FieldType {
    match t {
        FieldType::Keyword => pb::FieldType::Keyword,
        FieldType::Integer => pb::FieldType::Integer,
        FieldType::Float => pb::FieldType::Float,
    }
}

/// A field schema from the wire.
pub fn field_from_pb(f: pb::FieldSchema) -> Result<FieldSchema> {
    let ty = field_type_from_pb(&f.name, f.r#type)?;
    let s = FieldSchema { name: f.name, ty };
    s.validate()?;
    Ok(s)
}

fn nz(v: u32) -> Option<usize> {
    (v > 0).then_some(v as usize)
}

/// A create request as a collection config.
pub fn config_from_pb(r: pb::CreateCollectionRequest) -> Result<CollectionConfig> {
    let kind = match pb::IndexKind::try_from(r.index) {
        Ok(pb::IndexKind::Flat) => IndexKind::Flat,
        Ok(pb::IndexKind::Diskann) => IndexKind::Diskann,
        Ok(pb::IndexKind::Hnsw) | Ok(pb::IndexKind::Unspecified) => IndexKind::Hnsw,
        Ok(pb::IndexKind::Spann) => IndexKind::Spann,
        Ok(pb::IndexKind::Ivf) => IndexKind::Ivf,
        Err(_) => {
            return Err(ServerError::invalid(format!(
                "index kind {} is not FLAT (1), DISKANN (2), HNSW (3), SPANN (4) or IVF (5)",
                r.index
            )))
        }
    };
    let p = r.params.unwrap_or_default();
    let params = IndexParams {
        max_degree: nz(p.max_degree),
        build_list: nz(p.build_list),
        alpha: (p.alpha > 0.0).then_some(p.alpha),
        pq_bytes: nz(p.pq_bytes),
        m: nz(p.m),
        ef_construction: nz(p.ef_construction),
        max_list_bytes: nz(p.max_list_bytes),
        replicas: nz(p.replicas),
    };
    let fields = r
        .fields
        .into_iter()
        .map(field_from_pb)
        .collect::<Result<_>>()?;
    Ok(CollectionConfig {
        name: r.name,
        dim: r.dim as usize,
        metric: metric_from_pb(r.metric)?,
        kind,
        params,
        fields,
    })
}

/// Collection info for describe/list.
pub fn info_to_pb(c: &crate::engine::Collection) -> pb::CollectionInfo {
    let cfg = c.config();
    let (points, segments, unflushed, disk, ram) = c.describe();
    let p = &cfg.params;
    let u = |v: Option<usize>| v.unwrap_or(0) as u32;
    pb::CollectionInfo {
        name: cfg.name,
        dim: cfg.dim as u32,
        metric: metric_to_pb(cfg.metric) as i32,
        index: match cfg.kind {
            IndexKind::Flat => pb::IndexKind::Flat,
            IndexKind::Diskann => pb::IndexKind::Diskann,
            IndexKind::Hnsw => pb::IndexKind::Hnsw,
            IndexKind::Spann => pb::IndexKind::Spann,
            IndexKind::Ivf => pb::IndexKind::Ivf,
        } as i32,
        params: Some(pb::IndexParams {
            max_degree: u(p.max_degree),
            build_list: u(p.build_list),
            alpha: p.alpha.unwrap_or(0.0),
            pq_bytes: u(p.pq_bytes),
            m: u(p.m),
            ef_construction: u(p.ef_construction),
            max_list_bytes: u(p.max_list_bytes),
            replicas: u(p.replicas),
        }),
        fields: cfg
            .fields
            .iter()
            .map(|f| pb::FieldSchema {
                name: f.name.clone(),
                r#type: field_type_to_pb(f.ty) as i32,
            })
            .collect(),
        points,
        segments,
        unflushed_points: unflushed,
        disk_bytes: disk,
        ram_bytes: ram.into_iter().collect(),
    }
}

/// A wire filter (None when absent).
pub fn filter_from_pb(f: Option<pb::Filter>) -> Result<Option<Filter>> {
    f.map(|f| one_filter(f, 0)).transpose()
}

fn one_filter(f: pb::Filter, depth: usize) -> Result<Filter> {
    if depth > crate::engine::payload::MAX_FILTER_DEPTH {
        return Err(ServerError::invalid(format!(
            "filter nested deeper than {}",
            crate::engine::payload::MAX_FILTER_DEPTH
        )));
    }
    use pb::filter::Kind;
    match f.kind {
        Some(Kind::Match(m)) => Ok(Filter::Match {
            any: m
                .any
                .into_iter()
                .map(|v| value_from_pb(&m.field, v))
                .collect::<Result<_>>()?,
            field: m.field,
        }),
        Some(Kind::Range(r)) => {
            let lo = match (r.gte, r.gt) {
                (Some(_), Some(_)) => {
                    return Err(ServerError::invalid(format!(
                        "range on {:?} sets both gte and gt",
                        r.field
                    )))
                }
                (Some(x), None) => Some((x, true)),
                (None, Some(x)) => Some((x, false)),
                (None, None) => None,
            };
            let hi = match (r.lte, r.lt) {
                (Some(_), Some(_)) => {
                    return Err(ServerError::invalid(format!(
                        "range on {:?} sets both lte and lt",
                        r.field
                    )))
                }
                (Some(x), None) => Some((x, true)),
                (None, Some(x)) => Some((x, false)),
                (None, None) => None,
            };
            Ok(Filter::Range {
                field: r.field,
                lo,
                hi,
            })
        }
        Some(Kind::And(l)) => Ok(Filter::And(
            l.filters
                .into_iter()
                .map(|f| one_filter(f, depth + 1))
                .collect::<Result<_>>()?,
        )),
        Some(Kind::Or(l)) => Ok(Filter::Or(
            l.filters
                .into_iter()
                .map(|f| one_filter(f, depth + 1))
                .collect::<Result<_>>()?,
        )),
        Some(Kind::Not(f)) => Ok(Filter::Not(Box::new(one_filter(*f, depth + 1)?))),
        None => Err(ServerError::invalid("empty filter")),
    }
}

/// Search knobs from the wire (0 = default).
pub fn params_from_pb(p: Option<pb::SearchParams>) -> SearchParams {
    let p = p.unwrap_or_default();
    SearchParams {
        search_list: nz(p.search_list),
        beam_width: nz(p.beam_width),
        ef: nz(p.ef),
        nprobe: nz(p.nprobe),
        max_lists: nz(p.max_lists),
        eps: (p.eps > 0.0).then_some(p.eps),
        rerank: p.rerank.map(|r| r as usize),
    }
}

/// A payload's typed fields on the wire.
pub fn fields_to_pb(p: &Payload) -> std::collections::HashMap<String, pb::Value> {
    p.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_pb(v)))
        .collect()
}

/// A stored point on the wire.
pub fn point_to_pb(p: PointData) -> pb::Point {
    pb::Point {
        id: p.id,
        fields: fields_to_pb(&p.payload),
        text: p.payload.text,
        vector: p.vector,
    }
}

/// A hit on the wire.
pub fn hit_to_pb(h: Hit) -> pb::ScoredPoint {
    let (text, fields) = match &h.payload {
        Some(p) => (p.text.clone(), fields_to_pb(p)),
        None => (String::new(), Default::default()),
    };
    pb::ScoredPoint {
        id: h.id,
        score: h.score,
        text,
        fields,
        vector: h.vector.unwrap_or_default(),
    }
}

/// Stats on the wire.
pub fn stats_to_pb(s: &QueryStats) -> pb::QueryStats {
    pb::QueryStats {
        reads: s.index.reads,
        read_bytes: s.index.read_bytes,
        cache_hits: s.index.cache_hits,
        distance_computations: s.index.distance_computations,
        segments: s.segments,
        micros: s.micros,
        lists_probed: s.index.lists,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_knobs_of_zero_are_defaults_but_an_explicit_rerank_of_zero_is_kept() {
        let p = params_from_pb(Some(pb::SearchParams {
            max_lists: 8,
            rerank: Some(0),
            ..Default::default()
        }));
        assert_eq!(
            (p.max_lists, p.nprobe, p.ef, p.eps, p.rerank),
            (Some(8), None, None, None, Some(0))
        );
        let unset = params_from_pb(Some(pb::SearchParams {
            rerank: None,
            ..Default::default()
        }));
        assert_eq!(unset.rerank, None);
        assert_eq!(params_from_pb(None), SearchParams::default());
    }
}
