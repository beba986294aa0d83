//! Path → position index built from the YAML event stream, so semantic (cross-check) errors can
//! point at the offending node. serde only tells us positions for its own errors.

use serde_saphyr::granit_parser::{Event, Parser};
use std::collections::{BTreeMap, HashMap};

/// 1-based (line, column).
pub(super) type Pos = (usize, usize);

/// Positions of every node (value) and mapping key in one YAML document.
#[derive(Debug, Default)]
pub(super) struct PosIndex {
    /// Path of a value node → its position and, for scalars, its text.
    nodes: HashMap<String, (Pos, Option<String>)>,
    /// Path of a mapping entry → position of its key.
    keys: HashMap<String, Pos>,
    /// Position → path, for naming the field of a serde error.
    by_pos: BTreeMap<Pos, String>,
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        is_key: bool,
    },
    Seq {
        path: String,
        next: usize,
        is_key: bool,
    },
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl PosIndex {
    /// Builds the index; a syntax error simply ends it early (serde reports the error itself).
    pub(super) fn build(text: &str) -> Self {
        let mut idx = PosIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let pos = (span.start.line(), span.start.col() + 1);
            match event {
                Event::DocumentEnd => break,
                Event::Scalar(text, ..) => idx.node(&mut stack, pos, Some(text.into_owned()), None),
                Event::Alias(_) => idx.node(&mut stack, pos, None, None),
                Event::MappingStart(..) => idx.node(&mut stack, pos, None, Some(true)),
                Event::SequenceStart(..) => idx.node(&mut stack, pos, None, Some(false)),
                Event::MappingEnd | Event::SequenceEnd => {
                    let was_key = match stack.pop() {
                        Some(Frame::Map { is_key, .. }) | Some(Frame::Seq { is_key, .. }) => is_key,
                        None => false,
                    };
                    finish(&mut stack, was_key.then(|| "?".to_string()));
                }
                _ => {}
            }
        }
        idx
    }

    /// Records one node; `container` is Some(is_map) for collection starts.
    fn node(
        &mut self,
        stack: &mut Vec<Frame>,
        pos: Pos,
        scalar: Option<String>,
        container: Option<bool>,
    ) {
        let (path, is_key) = match stack.last_mut() {
            None => (String::new(), false),
            Some(Frame::Map {
                path, key: None, ..
            }) => (path.clone(), true),
            Some(Frame::Map {
                path, key: Some(k), ..
            }) => (join(path, k), false),
            Some(Frame::Seq { path, next, .. }) => {
                *next += 1;
                (format!("{path}[{}]", *next - 1), false)
            }
        };
        if is_key {
            match (container, scalar) {
                (None, Some(k)) => {
                    let full = join(&path, &k);
                    self.keys.insert(full.clone(), pos);
                    self.by_pos.insert(pos, full);
                    finish(stack, Some(k));
                }
                (None, None) => finish(stack, Some("?".to_string())),
                // Complex keys are not used by the schema; index their contents under a dummy path.
                (Some(is_map), _) => push(stack, join(&path, "?"), is_map, true),
            }
            return;
        }
        self.nodes.insert(path.clone(), (pos, scalar));
        self.by_pos.entry(pos).or_insert_with(|| path.clone());
        match container {
            Some(is_map) => push(stack, path, is_map, false),
            None => finish(stack, None),
        }
    }

    /// Position of the value at `path`, falling back to the closest ancestor that exists.
    pub(super) fn pos(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some((pos, _)) = self.nodes.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.nodes.get("").map(|n| n.0).unwrap_or((1, 1)),
            }
        }
    }

    /// Position of the key of the mapping entry at `path` (e.g. a header name), else of its value.
    pub(super) fn key_pos(&self, path: &str) -> Pos {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.pos(path))
    }

    /// Scalar text at `path`, if the node is a scalar.
    pub(super) fn scalar(&self, path: &str) -> Option<&str> {
        self.nodes.get(path).and_then(|(_, s)| s.as_deref())
    }

    /// Whether a value node exists at `path` (to tell "absent" from "null").
    pub(super) fn has(&self, path: &str) -> bool {
        self.nodes.contains_key(path)
    }

    /// The mapping a serde "missing field" error at `pos` is about: serde-saphyr reports the last
    /// key of the mapping (then the mapping is its parent), or the mapping node itself.
    pub(super) fn mapping_at(&self, pos: Pos) -> String {
        let Some(path) = self.path_at(pos) else {
            return String::new();
        };
        if self.keys.get(path) == Some(&pos) {
            path.rfind('.')
                .map(|i| path[..i].to_string())
                .unwrap_or_default()
        } else {
            path.to_string()
        }
    }

    /// Field path of the node at `pos`, or of the closest node before it.
    pub(super) fn path_at(&self, pos: Pos) -> Option<&str> {
        self.by_pos
            .range(..=pos)
            .next_back()
            .map(|(_, p)| p.as_str())
    }
}

fn push(stack: &mut Vec<Frame>, path: String, is_map: bool, is_key: bool) {
    stack.push(if is_map {
        Frame::Map {
            path,
            key: None,
            is_key,
        }
    } else {
        Frame::Seq {
            path,
            next: 0,
            is_key,
        }
    });
}

/// A node finished: a key sets the pending key of its map, a value clears it.
fn finish(stack: &mut [Frame], key: Option<String>) {
    if let Some(Frame::Map { key: k, .. }) = stack.last_mut() {
        *k = key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_values_keys_and_sequences() {
        // 1. A small document with block and flow collections.
        let text = "a:\n  b: 1\nlist:\n  - { x: \"y\" }\n  - z: 2\n";
        // 2. Build the index.
        let idx = PosIndex::build(text);
        // 3. Values and keys are at the expected positions.
        assert_eq!(idx.pos("a.b"), (2, 6));
        assert_eq!(idx.key_pos("a.b"), (2, 3));
        assert_eq!(idx.pos("list[0].x"), (4, 10));
        assert_eq!(idx.scalar("list[0].x"), Some("y"));
        assert_eq!(idx.pos("list[1].z"), (5, 8));
        // 4. Unknown paths fall back to the nearest ancestor.
        assert_eq!(idx.pos("list[1].nope"), idx.pos("list[1]"));
        assert_eq!(idx.path_at((5, 5)), Some("list[1].z"));
    }
}
