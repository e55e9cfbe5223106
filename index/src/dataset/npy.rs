//! The `.npy` header: magic, version, a Python-dict text header with `descr`, `fortran_order`
//! and `shape`. Only little-endian, C-order, 2-D arrays are accepted.

use super::DType;

/// Parsed header: component type, shape, and the byte offset where data starts.
#[derive(Debug, PartialEq, Eq)]
pub struct NpyHeader {
    pub dtype: DType,
    pub rows: usize,
    pub dim: usize,
    pub data_offset: usize,
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses the header from the first bytes of the file (at least the whole header).
pub fn parse(b: &[u8]) -> Result<NpyHeader, String> {
    if b.len() < 10 || &b[..6] != MAGIC {
        return Err("offset 0: not an .npy file (bad magic)".into());
    }
    let major = b[6];
    let (hlen, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 => {
            if b.len() < 12 {
                return Err("offset 8: truncated .npy header".into());
            }
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        }
        v => return Err(format!("offset 6: unsupported .npy version {v}")),
    };
    let end = start
        .checked_add(hlen)
        .ok_or("offset 8: header length overflows")?;
    if b.len() < end {
        return Err(format!(
            "offset {start}: header of {hlen} bytes is truncated"
        ));
    }
    let text = std::str::from_utf8(&b[start..end])
        .map_err(|_| format!("offset {start}: header is not text"))?;
    let descr = field(text, "descr").ok_or(format!("offset {start}: header has no 'descr'"))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let dtype = match descr {
        "<f4" | "f4" => DType::F32,
        "<f2" | "f2" => DType::F16,
        "|i1" | "i1" | "<i1" => DType::I8,
        "|u1" | "u1" | "<u1" => DType::U8,
        "<i4" | "i4" => DType::I32,
        d => {
            return Err(format!(
                "offset {start}: unsupported dtype {d:?} (<f4, <f2, |i1, |u1, <i4)"
            ))
        }
    };
    let fortran = field(text, "fortran_order")
        .ok_or(format!("offset {start}: header has no 'fortran_order'"))?;
    if fortran.trim().starts_with("True") {
        return Err(format!(
            "offset {start}: Fortran-order arrays are not supported"
        ));
    }
    let shape = field(text, "shape").ok_or(format!("offset {start}: header has no 'shape'"))?;
    let inner = shape.trim().trim_start_matches('(');
    let inner = inner.split(')').next().unwrap_or("");
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("offset {start}: bad shape {shape:?}"))
        })
        .collect::<Result<_, _>>()?;
    let (rows, dim) = match dims.as_slice() {
        [r, d] => (*r, *d),
        _ => return Err(format!("offset {start}: shape {dims:?} is not 2-D")),
    };
    Ok(NpyHeader {
        dtype,
        rows,
        dim,
        data_offset: end,
    })
}

/// The text after `'key':` up to the next top-level comma (or the closing paren for tuples).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("'{key}':");
    let at = text.find(&pat)? + pat.len();
    let rest = &text[at..];
    let rest_trim = rest.trim_start();
    if rest_trim.starts_with('(') {
        let close = rest_trim.find(')')?;
        return Some(&rest_trim[..=close]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Encodes a v1.0 header padded to a multiple of 64 bytes. `rows` is written with a fixed width so
/// the writer can patch it in place when the row count is known.
pub fn encode(dtype: DType, rows: usize, dim: usize) -> Vec<u8> {
    let descr = match dtype {
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::I32 => "<i4",
    };
    let dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    // Size the header for a 20-digit row count so patching it later never changes its length.
    let widest = dict.len() - rows.to_string().len() + 20;
    let total = (10 + widest + 1).div_ceil(64) * 64;
    let pad = total - 10 - dict.len() - 1;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}
