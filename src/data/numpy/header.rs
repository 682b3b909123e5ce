//! The `.npy` header: a Python dict literal (`{'descr': '<u1', 'fortran_order': False,
//! 'shape': (3, 28, 28), }`) parsed without a Python, into the element type and shape.

use super::array::{Dtype, NpyHeader};

#[derive(Debug, Clone, PartialEq)]
enum PyLit {
    Str(String),
    Bool(bool),
    Int(i128),
    Tuple(Vec<PyLit>),
    List(Vec<PyLit>),
    Dict(Vec<(PyLit, PyLit)>),
    None,
}

struct PyParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl PyParser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!(
                "malformed .npy header: expected `{}` at byte {}",
                c as char, self.i
            ))
        }
    }

    /// Items up to `close`, allowing a trailing comma. Returns (items, saw_comma).
    fn seq(&mut self, close: u8) -> std::result::Result<(Vec<PyLit>, bool), String> {
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok((items, comma));
            }
            items.push(self.value()?);
            comma = false;
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    comma = true;
                }
                Some(c) if c == close => {}
                _ => return Err("malformed .npy header: expected `,` or a closing bracket".into()),
            }
        }
    }

    fn value(&mut self) -> std::result::Result<PyLit, String> {
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != q {
                    self.i += 1;
                }
                if self.i >= self.s.len() {
                    return Err("malformed .npy header: unterminated string".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(PyLit::Str(text))
            }
            Some(b'(') => {
                self.i += 1;
                let (items, _) = self.seq(b')')?;
                Ok(PyLit::Tuple(items))
            }
            Some(b'[') => {
                self.i += 1;
                let (items, _) = self.seq(b']')?;
                Ok(PyLit::List(items))
            }
            Some(b'{') => {
                self.i += 1;
                let mut pairs = Vec::new();
                loop {
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        return Ok(PyLit::Dict(pairs));
                    }
                    let k = self.value()?;
                    self.expect(b':')?;
                    let v = self.value()?;
                    pairs.push((k, v));
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {}
                        _ => return Err("malformed .npy header: expected `,` or `}`".into()),
                    }
                }
            }
            Some(c) if c.is_ascii_digit() || c == b'-' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                let v: i128 = text
                    .parse()
                    .map_err(|_| format!("malformed .npy header: bad integer `{text}`"))?;
                // Python 2 long suffix.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                Ok(PyLit::Int(v))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Ok(PyLit::Bool(true)),
                    b"False" => Ok(PyLit::Bool(false)),
                    b"None" => Ok(PyLit::None),
                    other => Err(format!(
                        "malformed .npy header: unexpected `{}`",
                        String::from_utf8_lossy(other)
                    )),
                }
            }
            _ => Err("malformed .npy header: unexpected end".into()),
        }
    }
}

pub(super) fn parse_header_dict(text: &[u8]) -> std::result::Result<NpyHeader, String> {
    let mut p = PyParser { s: text, i: 0 };
    let PyLit::Dict(pairs) = p.value()? else {
        return Err("malformed .npy header: not a dict".into());
    };
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| matches!(k, PyLit::Str(s) if s == name))
            .map(|(_, v)| v)
    };
    let dtype = match get("descr") {
        Some(PyLit::Str(d)) => Dtype::parse(d)?,
        Some(_) => {
            return Err("structured (record) dtypes are not supported; save plain arrays".into())
        }
        None => return Err("malformed .npy header: no `descr`".into()),
    };
    match get("fortran_order") {
        Some(PyLit::Bool(false)) => {}
        Some(PyLit::Bool(true)) => {
            return Err("Fortran-order arrays are not supported; save with \
                        `np.ascontiguousarray(a)`"
                .into())
        }
        _ => return Err("malformed .npy header: no boolean `fortran_order`".into()),
    }
    let shape = match get("shape") {
        Some(PyLit::Tuple(dims)) => dims
            .iter()
            .map(|d| match d {
                PyLit::Int(n) if *n >= 0 => usize::try_from(*n)
                    .map_err(|_| format!("malformed .npy header: dimension {n} too large")),
                _ => Err("malformed .npy header: bad `shape`".to_string()),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?,
        _ => return Err("malformed .npy header: no `shape` tuple".into()),
    };
    Ok(NpyHeader { dtype, shape })
}
