//! The structural pass: the parsed YAML tree checked against the schema of the serde types
//! ([`super::schema`]) *before* deserialising, so that every unknown field, wrong type, bad
//! enum value and missing required field of a file is reported in one run (serde stops at the
//! first). Whatever this pass lets through, serde still checks afterwards.

use super::error::{ConfigError, ErrorKind};
use super::index::Pos;
use super::schema::{Schema, Shape};
use super::serde_err::{closest, expected_for};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};
use std::path::Path;

/// One YAML node with its position.
#[derive(Debug)]
pub(super) struct Node {
    pos: Pos,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// Text as written; `plain` = unquoted (only plain scalars can be null, numbers, booleans).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries: key text, key position, value.
    Map(Vec<(String, Pos, Node)>),
    /// An alias or complex key: not checked here (serde resolves and checks it).
    Opaque,
}

/// Builds the tree of the first document; `None` for an empty document or a syntax error
/// (serde reports the syntax error with its own position).
pub(super) fn parse_tree(text: &str) -> Option<Node> {
    let mut stack: Vec<(Node, Option<(String, Pos)>)> = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.ok()?;
        let pos = (span.start.line(), span.start.col() + 1);
        let node = match event {
            Event::DocumentEnd => break,
            Event::Scalar(text, style, ..) => Node {
                pos,
                kind: Kind::Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain,
                },
            },
            Event::Alias(_) => Node {
                pos,
                kind: Kind::Opaque,
            },
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let kind = if matches!(event, Event::MappingStart(..)) {
                    Kind::Map(Vec::new())
                } else {
                    Kind::Seq(Vec::new())
                };
                stack.push((Node { pos, kind }, None));
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => match stack.pop() {
                Some((node, _)) => node,
                None => return None,
            },
            _ => continue,
        };
        match stack.last_mut() {
            None => return Some(node),
            Some((parent, pending)) => add_child(parent, pending, node),
        }
    }
    None
}

/// Adds a finished node to its parent: a list element, a mapping key, or a mapping value.
fn add_child(parent: &mut Node, pending: &mut Option<(String, Pos)>, node: Node) {
    match &mut parent.kind {
        Kind::Seq(items) => items.push(node),
        Kind::Map(entries) => match pending.take() {
            Some((key, key_pos)) => entries.push((key, key_pos, node)),
            None => {
                let key = match node.kind {
                    Kind::Scalar { text, .. } => text,
                    // A complex key: not part of the schema, serde will say so.
                    _ => "?".to_string(),
                };
                *pending = Some((key, node.pos));
            }
        },
        _ => {}
    }
}

/// What the structural pass found in one file.
#[derive(Debug, Default)]
pub(super) struct Findings {
    /// Every structural problem, in tree order.
    pub errors: Vec<ConfigError>,
    /// Paths whose semantic errors would only repeat a structural one: every flagged path and,
    /// for a misspelt field, the field it probably meant (a typo'd `htps` leaves `http` unset).
    pub shadowed: Vec<String>,
    /// The file as JSON typed by the schema, the flagged entries left out (so their defaults
    /// apply), for the semantic checks to run too; `None` when that is not possible: a required
    /// field missing or malformed, a flagged list element, an alias.
    pub repaired: Option<serde_json::Value>,
}

/// Checks `root` (of `file`) against `schema`: every problem found and, when there are some,
/// the repaired value.
pub(super) fn check(root: &Node, schema: &Schema, file: &Path) -> Findings {
    let mut c = Checker {
        schema,
        file,
        errors: Vec::new(),
        shadowed: Vec::new(),
    };
    let Some(shape) = &schema.root else {
        return Findings::default();
    };
    c.node(root, shape, "");
    let repaired = if c.errors.is_empty() {
        None
    } else {
        let flagged = c.errors.iter().map(|e| e.path.clone()).collect();
        Repair { schema, flagged }.value(root, shape, "")
    };
    let mut shadowed = c.shadowed;
    shadowed.extend(c.errors.iter().map(|e| e.path.clone()));
    Findings {
        errors: c.errors,
        shadowed,
        repaired,
    }
}

struct Checker<'a> {
    schema: &'a Schema,
    file: &'a Path,
    errors: Vec<ConfigError>,
    shadowed: Vec<String>,
}

impl Checker<'_> {
    fn push(&mut self, pos: Pos, path: &str, kind: ErrorKind, message: String) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: pos.0,
            column: pos.1,
            path: path.to_string(),
            message,
            kind,
        });
    }

    fn node(&mut self, node: &Node, shape: &Shape, path: &str) {
        if matches!(node.kind, Kind::Opaque) {
            return;
        }
        match shape {
            Shape::Any => {}
            Shape::Option(inner) => {
                if !is_null(node) {
                    self.node(node, inner, path);
                }
            }
            Shape::Struct { name, fields } => self.structure(node, name, fields, path),
            Shape::Seq(elem) => match &node.kind {
                Kind::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{path}[{i}]");
                        if fits(item, elem) {
                            self.node(item, elem, &p);
                        } else {
                            // The element is the wrong kind of thing: say what the list holds.
                            self.wrong(item, &p, describe(shape));
                        }
                    }
                }
                _ => self.wrong(node, path, describe(shape)),
            },
            Shape::Map(value) => match &node.kind {
                Kind::Map(entries) => {
                    for (k, _, v) in entries {
                        self.node(v, value, &join(path, k));
                    }
                }
                _ => self.wrong(node, path, expected_for(path, "a map")),
            },
            Shape::Enum(variants) => self.variant(node, variants, path),
            scalar => {
                if !scalar_fits(node, scalar) {
                    self.wrong(node, path, expected_for(path, scalar_word(scalar)));
                }
            }
        }
    }

    fn structure(&mut self, node: &Node, name: &str, fields: &[(&'static str, Shape)], path: &str) {
        let Kind::Map(entries) = &node.kind else {
            self.wrong(node, path, describe_struct(self.schema, name, fields));
            return;
        };
        let names: Vec<&str> = fields.iter().map(|(f, _)| *f).collect();
        // A YAML merge key (`<<: *defaults`) brings fields this pass cannot see: leave the
        // mapping's completeness to serde.
        let merged = entries.iter().any(|(k, _, _)| k == "<<");
        for (key, key_pos, value) in entries.iter().filter(|(k, _, _)| k != "<<") {
            let p = join(path, key);
            match fields.iter().find(|(f, _)| f == key) {
                Some((_, shape)) => self.node(value, shape, &p),
                None => {
                    let mut msg = format!("unknown field `{key}`");
                    match closest(key, &names) {
                        Some(best) => {
                            msg.push_str(&format!(", did you mean `{best}`?"));
                            self.shadowed.push(join(path, best));
                        }
                        None => msg.push_str(&format!("; valid fields here: {}", names.join(", "))),
                    }
                    self.push(*key_pos, &p, ErrorKind::UnknownField, msg);
                }
            }
        }
        for field in self.schema.required(name) {
            if !merged && !entries.iter().any(|(k, _, _)| k == field) {
                self.push(
                    node.pos,
                    &join(path, field),
                    ErrorKind::MissingField,
                    format!("required field `{field}` is missing"),
                );
            }
        }
    }

    fn variant(&mut self, node: &Node, variants: &[&str], path: &str) {
        let list = variants.join(", ");
        match &node.kind {
            Kind::Scalar { text, .. } if variants.contains(&text.as_str()) => {}
            Kind::Scalar { text, .. } if !is_null(node) => {
                let msg = match closest(text, variants) {
                    Some(best) => format!(
                        "`{text}` is not allowed here, did you mean `{best}`? (one of: {list})"
                    ),
                    None => format!("`{text}` is not allowed here; use one of: {list}"),
                };
                self.push(node.pos, path, ErrorKind::InvalidValue, msg);
            }
            _ => self.wrong(node, path, format!("one of {list}")),
        }
    }

    /// "expected …, got/found …" at the node.
    fn wrong(&mut self, node: &Node, path: &str, expected: String) {
        let msg = match &node.kind {
            Kind::Scalar { text, .. } if !is_null(node) && !is_container_word(&expected) => {
                format!("expected {expected}, got \"{text}\"")
            }
            _ => format!("expected {expected}, found {}", found(node)),
        };
        self.push(node.pos, path, ErrorKind::WrongType, msg);
    }
}

/// Builds the repaired JSON value: the tree typed by the schema, flagged entries left out.
struct Repair<'a> {
    schema: &'a Schema,
    flagged: std::collections::HashSet<String>,
}

impl Repair<'_> {
    fn value(&self, node: &Node, shape: &Shape, path: &str) -> Option<serde_json::Value> {
        use serde_json::Value;
        match (shape, &node.kind) {
            (_, Kind::Opaque) | (Shape::Any, _) => None,
            (Shape::Option(_), _) if is_null(node) => Some(Value::Null),
            (Shape::Option(inner), _) => self.value(node, inner, path),
            (Shape::Struct { name, fields }, Kind::Map(entries)) => {
                self.object(name, fields, entries, path)
            }
            (Shape::Seq(elem), Kind::Seq(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let p = format!("{path}[{i}]");
                    // Leaving out an element would renumber the rest.
                    if self.flagged.contains(&p) {
                        None
                    } else {
                        self.value(item, elem, &p)
                    }
                })
                .collect::<Option<Vec<_>>>()
                .map(Value::Array),
            (Shape::Map(v), Kind::Map(entries)) => entries
                .iter()
                .map(|(k, _, n)| Some((k.clone(), self.value(n, v, &join(path, k))?)))
                .collect::<Option<serde_json::Map<_, _>>>()
                .map(Value::Object),
            (_, Kind::Scalar { text, .. }) if !is_null(node) => scalar_json(text, shape),
            _ => None,
        }
    }

    fn object(
        &self,
        name: &str,
        fields: &[(&'static str, Shape)],
        entries: &[(String, Pos, Node)],
        path: &str,
    ) -> Option<serde_json::Value> {
        let required = self.schema.required(name);
        let mut out = serde_json::Map::new();
        for (key, _, value) in entries {
            let p = join(path, key);
            let Some((_, shape)) = fields.iter().find(|(f, _)| f == key) else {
                // An unknown field (flagged): left out. A merge key: cannot be repaired here.
                if key == "<<" {
                    return None;
                }
                continue;
            };
            if self.flagged.contains(&p) {
                if required.contains(&key.as_str()) {
                    return None;
                }
                continue;
            }
            out.insert(key.clone(), self.value(value, shape, &p)?);
        }
        Some(serde_json::Value::Object(out))
    }
}

/// A scalar as the JSON value of its shape.
fn scalar_json(text: &str, shape: &Shape) -> Option<serde_json::Value> {
    use serde_json::Value;
    let t = text.trim();
    match shape {
        Shape::Str | Shape::Enum(_) => Some(Value::String(text.to_string())),
        Shape::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(Value::Bool(true)),
            "false" | "no" | "off" => Some(Value::Bool(false)),
            _ => None,
        },
        Shape::Int { .. } => {
            let v = parse_int(t)?;
            i64::try_from(v)
                .map(Value::from)
                .ok()
                .or_else(|| u64::try_from(v).ok().map(Value::from))
        }
        Shape::Float => {
            serde_json::Number::from_f64(t.replace('_', "").parse().ok()?).map(Value::Number)
        }
        _ => None,
    }
}

/// Whether an expectation is about a list or mapping (worded "found …" rather than "got …").
fn is_container_word(expected: &str) -> bool {
    expected.starts_with("a list") || expected.starts_with("a mapping") || expected.starts_with('{')
}

/// Whether a list element is at least the right kind of node (scalar / list / mapping).
fn fits(node: &Node, shape: &Shape) -> bool {
    match (shape, &node.kind) {
        (_, Kind::Opaque) | (Shape::Any, _) => true,
        (Shape::Option(inner), _) => is_null(node) || fits(node, inner),
        (Shape::Struct { .. } | Shape::Map(_), k) => matches!(k, Kind::Map(_)),
        (Shape::Seq(_), k) => matches!(k, Kind::Seq(_)),
        (_, k) => matches!(k, Kind::Scalar { .. }),
    }
}

/// What a node is, for "found …".
fn found(node: &Node) -> String {
    match &node.kind {
        _ if is_null(node) => "nothing (an empty value)".into(),
        Kind::Scalar { text, plain: true } if text.parse::<f64>().is_ok() => {
            format!("a number ({text})")
        }
        Kind::Scalar { text, .. } => format!("a string \"{text}\""),
        Kind::Seq(_) => "a list".into(),
        Kind::Map(_) => "a mapping".into(),
        Kind::Opaque => "an alias".into(),
    }
}

/// What a container shape expects, in configuration words: `a list of {transport, address}`.
fn describe(shape: &Shape) -> String {
    match shape {
        Shape::Seq(inner) => match &**inner {
            Shape::Struct { fields, .. } => format!("a list of {}", field_set(fields)),
            Shape::Enum(v) => format!("a list of {}", v.join(" / ")),
            Shape::Str => "a list of text".into(),
            _ => "a list".into(),
        },
        Shape::Struct { fields, .. } => format!("a mapping {}", field_set(fields)),
        Shape::Map(_) => "a mapping (key: value)".into(),
        _ => "a value".into(),
    }
}

fn describe_struct(schema: &Schema, name: &str, fields: &[(&'static str, Shape)]) -> String {
    let required = schema.required(name);
    if required.is_empty() {
        format!("a mapping {}", field_set(fields))
    } else {
        format!("a mapping {{{}}}", required.join(", "))
    }
}

/// `{a, b}` with at most the first few fields (the required ones come first in the schema).
fn field_set(fields: &[(&'static str, Shape)]) -> String {
    let names: Vec<&str> = fields.iter().map(|(f, _)| *f).take(4).collect();
    let more = if fields.len() > 4 { ", …" } else { "" };
    format!("{{{}{more}}}", names.join(", "))
}

fn is_null(node: &Node) -> bool {
    matches!(&node.kind, Kind::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
}

/// serde's own word for a scalar shape (mapped to configuration words by `expected_for`).
fn scalar_word(shape: &Shape) -> &'static str {
    match shape {
        Shape::Bool => "a boolean",
        Shape::Int { min, .. } if *min < 0 => "i64",
        Shape::Int { .. } => "u64",
        Shape::Float => "f64",
        _ => "a string",
    }
}

/// Whether a scalar node can become `shape`. Lenient where YAML readers differ (serde checks
/// again afterwards), strict where the value clearly cannot fit.
fn scalar_fits(node: &Node, shape: &Shape) -> bool {
    let Kind::Scalar { text, .. } = &node.kind else {
        return false;
    };
    if is_null(node) {
        return false;
    }
    let t = text.trim();
    match shape {
        Shape::Str => true,
        Shape::Bool => matches!(
            t.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off"
        ),
        Shape::Float => {
            let t = t.replace('_', "");
            t.parse::<f64>().is_ok()
                || matches!(
                    t.to_ascii_lowercase().trim_start_matches(['+', '-']),
                    ".inf" | ".nan"
                )
        }
        Shape::Int { min, max } => match parse_int(t) {
            Some(v) => (*min..=*max).contains(&v),
            // Quoted text is never a number.
            None => false,
        },
        _ => true,
    }
}

/// Decimal, `0x`, `0o`, `0b` integers with optional sign and `_` separators.
fn parse_int(t: &str) -> Option<i128> {
    let t = t.replace('_', "");
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(&t)),
    };
    let lower = digits.to_ascii_lowercase();
    let v = if let Some(h) = lower.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else if let Some(o) = lower.strip_prefix("0o") {
        i128::from_str_radix(o, 8).ok()?
    } else if let Some(b) = lower.strip_prefix("0b") {
        i128::from_str_radix(b, 2).ok()?
    } else {
        lower.parse::<i128>().ok()?
    };
    Some(if neg { -v } else { v })
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(text: &str, plain: bool) -> Node {
        Node {
            pos: (1, 1),
            kind: Kind::Scalar {
                text: text.into(),
                plain,
            },
        }
    }

    #[test]
    fn scalars_fit_their_shapes() {
        // 1. Whole numbers in every YAML notation, within the type's range only.
        let port = Shape::Int { min: 0, max: 65535 };
        assert!(scalar_fits(&scalar("5060", true), &port));
        assert!(scalar_fits(&scalar("0x13c4", true), &port));
        assert!(scalar_fits(&scalar("20_000", true), &port));
        assert!(!scalar_fits(&scalar("70000", true), &port));
        assert!(!scalar_fits(&scalar("1.5", true), &port));
        assert!(!scalar_fits(&scalar("fast", true), &port));
        // 2. Numbers, booleans, text; null fits none of them.
        assert!(scalar_fits(&scalar("2.5", true), &Shape::Float));
        assert!(scalar_fits(&scalar("3", true), &Shape::Float));
        assert!(scalar_fits(&scalar("true", true), &Shape::Bool));
        assert!(!scalar_fits(&scalar("maybe", true), &Shape::Bool));
        assert!(scalar_fits(&scalar("42", true), &Shape::Str));
        assert!(!scalar_fits(&scalar("~", true), &Shape::Str));
        // 3. A quoted "null" is text, not null.
        assert!(scalar_fits(&scalar("null", false), &Shape::Str));
    }

    #[test]
    fn tree_keeps_keys_positions_and_order() {
        // 1. A nested document.
        let root = parse_tree("a:\n  b: [1, x]\nc: ~\n").unwrap();
        // 2. Keys in order with their positions; values of the right kind.
        let Kind::Map(entries) = &root.kind else {
            panic!("{root:?}")
        };
        let keys: Vec<(&str, Pos)> = entries.iter().map(|(k, p, _)| (k.as_str(), *p)).collect();
        assert_eq!(keys, [("a", (1, 1)), ("c", (3, 1))]);
        assert!(is_null(&entries[1].2));
        let Kind::Map(inner) = &entries[0].2.kind else {
            panic!()
        };
        assert!(matches!(&inner[0].2.kind, Kind::Seq(items) if items.len() == 2));
        // 3. A syntax error gives no tree (serde reports it with its position).
        assert!(parse_tree("a: [1, 2\n").is_none());
    }
}
