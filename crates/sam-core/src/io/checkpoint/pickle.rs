//! A small, safe pickle virtual machine: enough of protocols 0-5 to read the `data.pkl` that
//! `torch.save` writes. It never executes code: globals are names, and only the few callables
//! a state dict needs (`OrderedDict`, `_rebuild_tensor_v2`, `_rebuild_parameter`, ...) are
//! interpreted; any other call yields an opaque [`Value::Object`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::StoredDType;

/// Largest number of items on the VM stack.
const MAX_STACK: usize = 1 << 20;
/// Largest number of nested MARKs.
const MAX_MARKS: usize = 1 << 16;
/// Deepest nesting of interpreted calls (`_rebuild_from_type_v2` wrapping another call).
const MAX_CALL_DEPTH: usize = 16;
/// Most container items copied while interpreting calls (bounds the time a hostile pickle
/// that copies one large container many times can take).
const MAX_WORK: usize = 1 << 24;
/// Most memo entries (a vit_h state dict's pickle uses a few thousand).
const MAX_MEMO: usize = 1 << 20;

/// A storage referenced by a persistent id `('storage', torch.XStorage, key, location, numel)`.
#[derive(Debug)]
pub(crate) struct StorageRef {
    /// Element type, or the name of an unsupported storage class.
    pub dtype: Result<StoredDType, String>,
    /// The storage key: the entry `<root>/data/<key>` of the zip archive.
    pub key: String,
}

/// A tensor rebuilt by `torch._utils._rebuild_tensor_v2` (or a variant).
#[derive(Debug)]
pub(crate) struct TensorRef {
    pub storage: Rc<StorageRef>,
    /// Element type of the tensor (the storage's, unless `_rebuild_tensor_v3` overrides it).
    pub dtype: Result<StoredDType, String>,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
}

/// A pickled value. Containers are shared (`Rc`) like Python objects, so the memo and the
/// stack see the same list or dict.
#[derive(Clone)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64.
    BigInt,
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<Vec<Value>>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// A `module.name` reference (from GLOBAL / STACK_GLOBAL).
    Global(Rc<(String, String)>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// A tensor kind this reader cannot use (quantized, sparse, ...): the rebuild function.
    UnsupportedTensor(Rc<str>),
    /// The result of calling anything else; holds the callable's name.
    Object(Rc<str>),
}

impl Drop for Value {
    /// Drops nested containers iteratively, so a deeply nested (hostile) pickle cannot
    /// overflow the stack while being freed.
    fn drop(&mut self) {
        let mut work = Vec::new();
        detach_children(self, &mut work);
        while let Some(mut v) = work.pop() {
            detach_children(&mut v, &mut work);
        }
    }
}

fn detach_children(v: &mut Value, out: &mut Vec<Value>) {
    match v {
        Value::Tuple(rc) => {
            if let Some(items) = Rc::get_mut(rc) {
                out.append(items);
            }
        }
        Value::List(rc) => {
            if let Some(cell) = Rc::get_mut(rc) {
                out.append(cell.get_mut());
            }
        }
        Value::Dict(rc) => {
            if let Some(cell) = Rc::get_mut(rc) {
                for (k, v) in cell.get_mut().drain(..) {
                    out.push(k);
                    out.push(v);
                }
            }
        }
        _ => {}
    }
}

impl Value {
    /// A short description for error messages.
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(_) | Value::BigInt => "an int".into(),
            Value::Float(f) => format!("a float ({f})"),
            Value::Str(_) => "a string".into(),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::Tuple(_) => "a tuple".into(),
            Value::List(_) => "a list".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Global(g) => format!("a reference to {}.{}", g.0, g.1),
            Value::Storage(_) => "a storage".into(),
            Value::Tensor(_) => "a tensor".into(),
            Value::UnsupportedTensor(f) => format!("a tensor of an unsupported kind ({f})"),
            Value::Object(c) => format!("an object built by {c}"),
        }
    }

    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    fn as_usize(&self) -> Option<usize> {
        self.as_int().and_then(|i| usize::try_from(i).ok())
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a tuple or list (cloned handles).
    fn seq_items(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.as_ref().clone()),
            Value::List(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }
}

fn corrupt(pos: usize, msg: impl std::fmt::Display) -> String {
    format!("data.pkl, byte {pos}: {msg}")
}

/// Runs the pickle in `data` and returns the unpickled top-level value. Errors are messages
/// describing the malformation (the caller wraps them as `Corrupt` / `Unsupported`).
pub(crate) fn unpickle(data: &[u8]) -> Result<Value, PickleError> {
    Vm {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        work: 0,
    }
    .run()
}

/// Why a pickle could not be read.
#[derive(Debug)]
pub(crate) enum PickleError {
    Corrupt(String),
    Unsupported(String),
}

type PResult<T> = Result<T, PickleError>;

struct Vm<'d> {
    data: &'d [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<usize, Value>,
    /// Container items copied so far (see [`MAX_WORK`]).
    work: usize,
}

impl<'d> Vm<'d> {
    fn err<T>(&self, msg: impl std::fmt::Display) -> PResult<T> {
        Err(PickleError::Corrupt(corrupt(self.pos, msg)))
    }

    fn take(&mut self, n: usize) -> PResult<&'d [u8]> {
        let end = self.pos.checked_add(n);
        match end.and_then(|e| self.data.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => self.err("unexpected end of the pickle data"),
        }
    }

    fn u8(&mut self) -> PResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> PResult<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> PResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> PResult<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    fn len_u64(&mut self) -> PResult<usize> {
        let n = self.u64()?;
        match usize::try_from(n) {
            Ok(n) => Ok(n),
            Err(_) => self.err("length too large"),
        }
    }

    /// A text line (protocol 0), without its trailing newline.
    fn line(&mut self) -> PResult<&'d [u8]> {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = &rest[..i];
                self.pos += i + 1;
                Ok(line.strip_suffix(b"\r").unwrap_or(line))
            }
            None => self.err("unterminated text line"),
        }
    }

    fn push(&mut self, v: Value) -> PResult<()> {
        if self.stack.len() >= MAX_STACK {
            return self.err("pickle stack too deep");
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> PResult<Value> {
        if self.marks.last().is_some_and(|&m| self.stack.len() <= m) {
            return self.err("pop below a MARK");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.err("pop from an empty stack"),
        }
    }

    fn top(&self) -> PResult<&Value> {
        match self.stack.last() {
            Some(v) => Ok(v),
            None => self.err("empty stack"),
        }
    }

    fn pop_mark(&mut self) -> PResult<Vec<Value>> {
        let Some(m) = self.marks.pop() else {
            return self.err("no MARK on the stack");
        };
        if m > self.stack.len() {
            return self.err("MARK beyond the stack");
        }
        Ok(self.stack.split_off(m))
    }

    fn memo_get(&mut self, idx: usize) -> PResult<()> {
        match self.memo.get(&idx) {
            Some(v) => {
                let v = v.clone();
                self.push(v)
            }
            None => self.err(format!("memo entry {idx} is not defined")),
        }
    }

    fn memo_put(&mut self, idx: usize) -> PResult<()> {
        let v = self.top()?.clone();
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&idx) {
            return self.err("too many memo entries");
        }
        self.memo.insert(idx, v);
        Ok(())
    }

    fn text_int(&mut self, line: &[u8]) -> PResult<Value> {
        let s = String::from_utf8_lossy(line);
        let s = s.trim().trim_end_matches('L');
        match s {
            "00" => return Ok(Value::Bool(false)),
            "01" => return Ok(Value::Bool(true)),
            _ => {}
        }
        match s.parse::<i64>() {
            Ok(i) => Ok(Value::Int(i)),
            Err(_)
                if !s.is_empty()
                    && s.trim_start_matches('-')
                        .bytes()
                        .all(|b| b.is_ascii_digit()) =>
            {
                Ok(Value::BigInt)
            }
            Err(_) => self.err(format!("invalid integer literal {s:?}")),
        }
    }

    fn run(mut self) -> PResult<Value> {
        loop {
            let op = self.u8()?;
            match op {
                // PROTO
                0x80 => {
                    let _ = self.u8()?;
                }
                // FRAME
                0x95 => {
                    let _ = self.u64()?;
                }
                // STOP
                b'.' => {
                    let v = self.pop()?;
                    return Ok(v);
                }
                // MARK
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return self.err("too many nested MARKs");
                    }
                    self.marks.push(self.stack.len());
                }
                // POP
                b'0' => {
                    self.pop()?;
                }
                // POP_MARK
                b'1' => {
                    self.pop_mark()?;
                }
                // DUP
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                // NONE, NEWTRUE, NEWFALSE
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                // INT, LONG (text)
                b'I' | b'L' => {
                    let line = self.line()?;
                    let v = self.text_int(line)?;
                    self.push(v)?;
                }
                // BININT, BININT1, BININT2
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.push(Value::Int(v))?;
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(Value::Int(v))?;
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.push(Value::Int(v))?;
                }
                // LONG1, LONG4
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        let n = self.u32()? as i32;
                        match usize::try_from(n) {
                            Ok(n) => n,
                            Err(_) => return self.err("negative LONG4 length"),
                        }
                    };
                    let bytes = self.take(n)?;
                    let v = long_from_le(bytes);
                    self.push(v)?;
                }
                // FLOAT (text), BINFLOAT (big-endian f64)
                b'F' => {
                    let line = self.line()?;
                    let s = String::from_utf8_lossy(line);
                    match s.trim().parse::<f64>() {
                        Ok(f) => self.push(Value::Float(f))?,
                        Err(_) => return self.err(format!("invalid float literal {s:?}")),
                    }
                }
                b'G' => {
                    let b = self.take(8)?;
                    let f = f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    self.push(Value::Float(f))?;
                }
                // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as usize,
                        0x8c => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let bytes = self.take(n)?;
                    let s = String::from_utf8_lossy(bytes);
                    self.push(Value::Str(s.into()))?;
                }
                // BINSTRING, SHORT_BINSTRING (Python 2 str): decoded as text
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        let n = self.u32()? as i32;
                        match usize::try_from(n) {
                            Ok(n) => n,
                            Err(_) => return self.err("negative BINSTRING length"),
                        }
                    } else {
                        self.u8()? as usize
                    };
                    let bytes = self.take(n)?;
                    let s = String::from_utf8_lossy(bytes);
                    self.push(Value::Str(s.into()))?;
                }
                // STRING (text, quoted repr)
                b'S' => {
                    let line = self.line()?;
                    let s = unquote_py_string(line);
                    self.push(Value::Str(s.into()))?;
                }
                // UNICODE (text, raw-unicode-escape)
                b'V' => {
                    let line = self.line()?;
                    let s = raw_unicode_unescape(line);
                    self.push(Value::Str(s.into()))?;
                }
                // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let bytes = self.take(n)?;
                    self.push(Value::Bytes(bytes.into()))?;
                }
                // EMPTY_TUPLE, TUPLE, TUPLE1/2/3
                b')' => self.push(Value::Tuple(Rc::new(Vec::new())))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(Rc::new(items)))?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(Rc::new(items)))?;
                }
                // EMPTY_LIST, LIST, EMPTY_SET, FROZENSET (sets are read as lists)
                b']' | 0x8f => self.push(Value::List(Rc::new(RefCell::new(Vec::new()))))?,
                b'l' | 0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(Rc::new(RefCell::new(items))))?;
                }
                // APPEND
                b'a' => {
                    let v = self.pop()?;
                    self.extend_top(vec![v])?;
                }
                // APPENDS, ADDITEMS
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.extend_top(items)?;
                }
                // EMPTY_DICT, DICT
                b'}' => self.push(Value::Dict(Rc::new(RefCell::new(Vec::new()))))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs_of(items);
                    match pairs {
                        Some(p) => self.push(Value::Dict(Rc::new(RefCell::new(p))))?,
                        None => return self.err("DICT with an odd number of items"),
                    }
                }
                // SETITEM, SETITEMS
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    match pairs_of(items) {
                        Some(p) => self.set_items(p)?,
                        None => return self.err("SETITEMS with an odd number of items"),
                    }
                }
                // Memo: PUT, BINPUT, LONG_BINPUT, MEMOIZE, GET, BINGET, LONG_BINGET
                b'p' => {
                    let line = self.line()?;
                    let idx = self.text_index(line)?;
                    self.memo_put(idx)?;
                }
                b'q' => {
                    let idx = self.u8()? as usize;
                    self.memo_put(idx)?;
                }
                b'r' => {
                    let idx = self.u32()? as usize;
                    self.memo_put(idx)?;
                }
                0x94 => {
                    let idx = self.memo.len();
                    self.memo_put(idx)?;
                }
                b'g' => {
                    let line = self.line()?;
                    let idx = self.text_index(line)?;
                    self.memo_get(idx)?;
                }
                b'h' => {
                    let idx = self.u8()? as usize;
                    self.memo_get(idx)?;
                }
                b'j' => {
                    let idx = self.u32()? as usize;
                    self.memo_get(idx)?;
                }
                // GLOBAL (text), STACK_GLOBAL
                b'c' => {
                    let module = String::from_utf8_lossy(self.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.line()?).into_owned();
                    self.push(Value::Global(Rc::new((module, name))))?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => {
                            let g = Value::Global(Rc::new((m.to_string(), n.to_string())));
                            self.push(g)?;
                        }
                        _ => return self.err("STACK_GLOBAL needs two strings"),
                    }
                }
                // REDUCE
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.call(&func, &args, 0)?;
                    self.push(v)?;
                }
                // NEWOBJ (cls, args), NEWOBJ_EX (cls, args, kwargs)
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(&cls, &args, 0)?;
                    self.push(v)?;
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(&cls, &args, 0)?;
                    self.push(v)?;
                }
                // OBJ: MARK cls args... ; INST: MARK args... with module/name lines
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return self.err("OBJ without a class");
                    }
                    let cls = items.remove(0);
                    let v = self.call(&cls, &Value::Tuple(Rc::new(items)), 0)?;
                    self.push(v)?;
                }
                b'i' => {
                    let module = String::from_utf8_lossy(self.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.line()?).into_owned();
                    let items = self.pop_mark()?;
                    let cls = Value::Global(Rc::new((module, name)));
                    let v = self.call(&cls, &Value::Tuple(Rc::new(items)), 0)?;
                    self.push(v)?;
                }
                // BUILD: the state is dropped (OrderedDict `_metadata`, parameter state, ...)
                b'b' => {
                    let _state = self.pop()?;
                    self.top()?;
                }
                // PERSID (text), BINPERSID
                b'P' => {
                    let line = self.line()?;
                    let pid = Value::Str(String::from_utf8_lossy(line).into());
                    let v = self.persistent_load(&pid)?;
                    self.push(v)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(&pid)?;
                    self.push(v)?;
                }
                // EXT1/2/4, NEXT_BUFFER, READONLY_BUFFER
                0x82..=0x84 | 0x97 | 0x98 => {
                    return Err(PickleError::Unsupported(corrupt(
                        self.pos - 1,
                        format!(
                            "pickle opcode 0x{op:02x} (extension registry / out-of-band buffer) is not supported"
                        ),
                    )));
                }
                _ => {
                    return Err(PickleError::Corrupt(corrupt(
                        self.pos - 1,
                        format!("unknown pickle opcode 0x{op:02x}"),
                    )));
                }
            }
        }
    }

    /// Counts `n` copied items against [`MAX_WORK`].
    fn charge(&mut self, n: usize) -> PResult<()> {
        self.work = self.work.saturating_add(n);
        if self.work > MAX_WORK {
            return self.err("the pickle is too complex (too many copied items)");
        }
        Ok(())
    }

    /// The items of a tuple or list (`None` for other values), charged to the work budget.
    fn items(&mut self, v: &Value) -> PResult<Option<Vec<Value>>> {
        let n = match v {
            Value::Tuple(t) => t.len(),
            Value::List(l) => l.borrow().len(),
            _ => return Ok(None),
        };
        self.charge(n)?;
        Ok(v.seq_items())
    }

    /// A tuple or list of non-negative ints.
    fn usize_items(&mut self, v: &Value) -> PResult<Option<Vec<usize>>> {
        Ok(self
            .items(v)?
            .and_then(|items| items.iter().map(Value::as_usize).collect()))
    }

    fn text_index(&self, line: &[u8]) -> PResult<usize> {
        match std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            Some(i) => Ok(i),
            None => self.err("invalid memo index"),
        }
    }

    /// APPEND/APPENDS/ADDITEMS onto the list on top of the stack (ignored for opaque objects).
    fn extend_top(&mut self, items: Vec<Value>) -> PResult<()> {
        match self.top()? {
            Value::List(l) => {
                let l = l.clone();
                l.borrow_mut().extend(items);
                Ok(())
            }
            Value::Object(_) => Ok(()),
            other => {
                let kind = other.kind();
                self.err(format!("APPEND onto {kind}"))
            }
        }
    }

    /// SETITEM/SETITEMS onto the dict on top of the stack (ignored for opaque objects).
    fn set_items(&mut self, pairs: Vec<(Value, Value)>) -> PResult<()> {
        match self.top()? {
            Value::Dict(d) => {
                let d = d.clone();
                d.borrow_mut().extend(pairs);
                Ok(())
            }
            Value::Object(_) => Ok(()),
            other => {
                let kind = other.kind();
                self.err(format!("SETITEM onto {kind}"))
            }
        }
    }

    /// `torch.save`'s persistent ids: `('storage', torch.XStorage, key, location, numel)`.
    fn persistent_load(&mut self, pid: &Value) -> PResult<Value> {
        let Some(items) = self.items(pid)? else {
            return self.err(format!("persistent id is {}, expected a tuple", pid.kind()));
        };
        if items.first().and_then(Value::as_str) != Some("storage") || items.len() < 3 {
            return Err(PickleError::Unsupported(corrupt(
                self.pos,
                "persistent id is not a torch storage reference",
            )));
        }
        let dtype = match &items[1] {
            Value::Global(g) => storage_dtype(&g.0, &g.1),
            other => return self.err(format!("storage type is {}", other.kind())),
        };
        let key = match &items[2] {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            other => return self.err(format!("storage key is {}", other.kind())),
        };
        Ok(Value::Storage(Rc::new(StorageRef { dtype, key })))
    }

    /// Interprets a call (REDUCE / NEWOBJ) of the few callables a state dict uses.
    fn call(&mut self, func: &Value, args: &Value, depth: usize) -> PResult<Value> {
        if depth > MAX_CALL_DEPTH {
            return self.err("calls nested too deeply");
        }
        let Value::Global(g) = func else {
            return Ok(Value::Object(format!("<{}>", func.kind()).into()));
        };
        let (module, name) = (g.0.as_str(), g.1.as_str());
        let args = self.items(args)?.unwrap_or_default();
        let v = match (module, name) {
            ("collections", "OrderedDict")
            | ("builtins" | "__builtin__", "dict")
            | ("collections", "defaultdict") => {
                // defaultdict's first argument is the default factory, not items.
                let items = match args.first() {
                    Some(Value::Dict(d)) if name != "defaultdict" => {
                        let items = d.borrow().clone();
                        self.charge(items.len())?;
                        items
                    }
                    _ => Vec::new(),
                };
                Value::Dict(Rc::new(RefCell::new(items)))
            }
            ("builtins" | "__builtin__", "list" | "set" | "frozenset") => {
                let items = match args.first() {
                    Some(a) => self.items(a)?.unwrap_or_default(),
                    None => Vec::new(),
                };
                Value::List(Rc::new(RefCell::new(items)))
            }
            ("builtins" | "__builtin__", "tuple") => {
                let items = match args.first() {
                    Some(a) => self.items(a)?.unwrap_or_default(),
                    None => Vec::new(),
                };
                Value::Tuple(Rc::new(items))
            }
            ("_codecs", "encode") => match args.first() {
                Some(Value::Str(s)) => Value::Bytes(
                    s.chars()
                        .map(|c| c as u32 as u8)
                        .collect::<Vec<u8>>()
                        .into(),
                ),
                _ => Value::Bytes(Rc::from(&[][..])),
            },
            ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_tensor_v3") => {
                self.rebuild_tensor(name, &args)?
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                match args.first() {
                    Some(t @ (Value::Tensor(_) | Value::UnsupportedTensor(_))) => t.clone(),
                    Some(other) => {
                        return self.err(format!("{name} of {}, expected a tensor", other.kind()));
                    }
                    None => return self.err(format!("{name} without arguments")),
                }
            }
            ("torch._tensor", "_rebuild_from_type_v2" | "_rebuild_from_type") => {
                // (func, new_type, args, state): the subclass is dropped, the tensor kept.
                match (args.first(), args.get(2)) {
                    (Some(f), Some(a)) => self.call(f, a, depth + 1)?,
                    _ => return self.err(format!("{name} with too few arguments")),
                }
            }
            ("torch._utils", n) if n.starts_with("_rebuild") => {
                Value::UnsupportedTensor(format!("{module}.{name}").into())
            }
            ("torch", n) if n.starts_with("_rebuild") || n.ends_with("Tensor") => {
                Value::UnsupportedTensor(format!("{module}.{name}").into())
            }
            _ => Value::Object(format!("{module}.{name}").into()),
        };
        Ok(v)
    }

    /// `_rebuild_tensor(storage, offset, size, stride)`, `_rebuild_tensor_v2(storage, offset,
    /// size, stride, requires_grad, backward_hooks, ...)`, `_rebuild_tensor_v3(..., dtype, ...)`.
    fn rebuild_tensor(&mut self, name: &str, args: &[Value]) -> PResult<Value> {
        let (Some(storage), Some(offset), Some(size), Some(stride)) =
            (args.first(), args.get(1), args.get(2), args.get(3))
        else {
            return self.err(format!("{name} with too few arguments"));
        };
        let Value::Storage(storage) = storage else {
            return self.err(format!("{name} of {}, expected a storage", storage.kind()));
        };
        let (Some(offset), Some(shape), Some(strides)) = (
            offset.as_usize(),
            self.usize_items(size)?,
            self.usize_items(stride)?,
        ) else {
            return self.err(format!("{name} with an invalid offset, size or stride"));
        };
        if shape.len() != strides.len() {
            return self.err(format!(
                "{name}: size {shape:?} and stride {strides:?} differ in length"
            ));
        }
        let mut dtype = storage.dtype.clone();
        if name == "_rebuild_tensor_v3" {
            dtype = match args.get(6) {
                Some(Value::Global(g)) => torch_dtype(&g.0, &g.1),
                _ => return self.err("_rebuild_tensor_v3 without a dtype"),
            };
        }
        Ok(Value::Tensor(Rc::new(TensorRef {
            storage: storage.clone(),
            dtype,
            offset,
            shape,
            strides,
        })))
    }
}

fn pairs_of(items: Vec<Value>) -> Option<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        return None;
    }
    let mut pairs = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        pairs.push((k, v));
    }
    Some(pairs)
}

/// A little-endian two's-complement integer (LONG1 / LONG4).
fn long_from_le(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    if bytes.len() > 8 {
        // Fits in i64 only if the extra bytes are pure sign extension.
        let fill = if negative { 0xff } else { 0 };
        if bytes[8..].iter().any(|&b| b != fill) || (bytes[7] & 0x80 != 0) != negative {
            return Value::BigInt;
        }
    }
    let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
    for (d, s) in buf.iter_mut().zip(bytes) {
        *d = *s;
    }
    Value::Int(i64::from_le_bytes(buf))
}

/// The element type of a `torch.XStorage` class.
fn storage_dtype(module: &str, name: &str) -> Result<StoredDType, String> {
    let dtype = match (module, name) {
        ("torch", "FloatStorage") => StoredDType::F32,
        ("torch", "HalfStorage") => StoredDType::F16,
        ("torch", "BFloat16Storage") => StoredDType::BF16,
        ("torch", "DoubleStorage") => StoredDType::F64,
        ("torch", "LongStorage") => StoredDType::I64,
        ("torch", "IntStorage") => StoredDType::I32,
        ("torch", "ShortStorage") => StoredDType::I16,
        ("torch", "CharStorage") => StoredDType::I8,
        ("torch", "ByteStorage") | ("torch", "UntypedStorage") => StoredDType::U8,
        ("torch", "BoolStorage") => StoredDType::Bool,
        ("torch.storage", "UntypedStorage") => StoredDType::U8,
        _ => return Err(format!("{module}.{name}")),
    };
    Ok(dtype)
}

/// The element type of a `torch.<dtype>` reference (as pickled for `_rebuild_tensor_v3`).
fn torch_dtype(module: &str, name: &str) -> Result<StoredDType, String> {
    let dtype = match (module, name) {
        ("torch", "float32" | "float") => StoredDType::F32,
        ("torch", "float16" | "half") => StoredDType::F16,
        ("torch", "bfloat16") => StoredDType::BF16,
        ("torch", "float64" | "double") => StoredDType::F64,
        ("torch", "int64" | "long") => StoredDType::I64,
        ("torch", "int32" | "int") => StoredDType::I32,
        ("torch", "int16" | "short") => StoredDType::I16,
        ("torch", "int8") => StoredDType::I8,
        ("torch", "uint8") => StoredDType::U8,
        ("torch", "bool") => StoredDType::Bool,
        _ => return Err(format!("{module}.{name}")),
    };
    Ok(dtype)
}

/// Decodes a protocol-0 `STRING` argument: a quoted Python 2 `repr`.
fn unquote_py_string(line: &[u8]) -> String {
    let inner = match line {
        [q @ (b'\'' | b'"'), rest @ .., last] if last == q => rest,
        other => other,
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        if b == b'\\' && i + 1 < inner.len() {
            let e = inner[i + 1];
            i += 2;
            match e {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'x' => {
                    let hex = inner
                        .get(i..i + 2)
                        .and_then(|h| std::str::from_utf8(h).ok());
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(v) => {
                            out.push(v);
                            i += 2;
                        }
                        None => out.extend_from_slice(b"\\x"),
                    }
                }
                other => out.push(other),
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes a protocol-0 `UNICODE` argument (raw-unicode-escape: `\uXXXX`, `\UXXXXXXXX`,
/// other bytes as Latin-1).
fn raw_unicode_unescape(line: &[u8]) -> String {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'\\' && matches!(line.get(i + 1), Some(b'u' | b'U')) {
            let n = if line[i + 1] == b'u' { 4 } else { 8 };
            let hex = line
                .get(i + 2..i + 2 + n)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(c) = hex
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
            {
                out.push(c);
                i += 2 + n;
                continue;
            }
        }
        out.push(line[i] as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long1_values() {
        assert!(matches!(long_from_le(&[]), Value::Int(0)));
        assert!(matches!(long_from_le(&[0xff]), Value::Int(-1)));
        assert!(matches!(long_from_le(&[0x00, 0x01]), Value::Int(256)));
        assert!(matches!(long_from_le(&[0xff; 9]), Value::Int(-1)));
        assert!(matches!(
            long_from_le(&[0, 0, 0, 0, 0, 0, 0, 0, 1]),
            Value::BigInt
        ));
    }

    #[test]
    fn deep_nesting_drops_without_overflow() {
        // EMPTY_LIST, BINPUT 0, then 200k times: EMPTY_LIST, BINGET 0, APPEND, BINPUT 0, POP.
        let mut p = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..200_000 {
            p.extend_from_slice(&[b']', b'h', 0, b'a', b'q', 0, b'0']);
        }
        p.extend_from_slice(b"0N.");
        let v = unpickle(&p).unwrap();
        assert!(matches!(v, Value::None));
    }

    #[test]
    fn repeated_copies_hit_the_work_budget() {
        // list(t) of a 1000-item tuple, 20k times: an error rather than minutes of copying.
        let mut p = b"\x80\x02cbuiltins\nlist\nq\x00(".to_vec();
        p.extend(std::iter::repeat_n([b'K', 0], 1000).flatten());
        p.extend_from_slice(b"tq\x010");
        for _ in 0..20_000 {
            p.extend_from_slice(b"h\x00h\x01\x85R0");
        }
        p.extend_from_slice(b"N.");
        match unpickle(&p) {
            Err(PickleError::Corrupt(m)) => assert!(m.contains("too complex"), "{m}"),
            other => panic!("{:?}", other.map(|v| v.kind())),
        }
    }

    #[test]
    fn text_protocol_values() {
        let p = b"(I1\nI01\nF1.5\nS'a\\nb'\nVx\\u00e9\np0\ng0\nL12L\nt.";
        let v = unpickle(p).unwrap();
        let items = v.seq_items().unwrap();
        assert!(matches!(items[0], Value::Int(1)));
        assert!(matches!(items[1], Value::Bool(true)));
        assert!(matches!(items[2], Value::Float(f) if f == 1.5));
        assert_eq!(items[3].as_str(), Some("a\nb"));
        assert_eq!(items[4].as_str(), Some("x\u{e9}"));
        assert_eq!(items[5].as_str(), Some("x\u{e9}"));
        assert!(matches!(items[6], Value::Int(12)));
    }

    #[test]
    fn never_panics_on_prefixes_and_junk() {
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00ac\ntorch._utils\n_rebuild_tensor_v2\n(K\x00tRu.";
        for n in 0..p.len() {
            let _ = unpickle(&p[..n]);
        }
        let mut x = 12345u32;
        for _ in 0..2000 {
            let buf: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 8) as u8
                })
                .collect();
            let _ = unpickle(&buf);
        }
    }
}
