//! The file's schema, read from the serde types themselves (`raw.rs`) so it cannot drift: a
//! probing `Deserializer` asks each `Deserialize` impl what it wants (a struct with these
//! fields, a list, an enum with these variants, a `u16`, ...) and records the answer as a
//! [`Shape`]. Adding a field to a `Raw*` struct the usual way is all it takes for the
//! structural check (`structure.rs`) to know it.
//!
//! Which fields are required (no `#[serde(default)]`, not an `Option`) is not visible in the
//! field list; it is found by probing again with fields left out and noting which ones the
//! derived code reports missing.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// What a YAML node must look like.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Shape {
    /// Anything (not probed, or probing did not reach it): not checked structurally.
    Any,
    /// `true` / `false`.
    Bool,
    /// A whole number in `min..=max`.
    Int { min: i128, max: i128 },
    /// A number.
    Float,
    /// Text (any scalar).
    Str,
    /// May be absent or null; otherwise the inner shape.
    Option(Box<Shape>),
    /// A list of the inner shape.
    Seq(Box<Shape>),
    /// A mapping from text keys to the inner shape.
    Map(Box<Shape>),
    /// A mapping with exactly these fields (`name` is the Rust type, for required fields).
    Struct {
        name: &'static str,
        fields: Vec<(&'static str, Shape)>,
    },
    /// One of these words.
    Enum(&'static [&'static str]),
}

/// The shape of the root type plus, per struct name, its required fields.
#[derive(Debug, Default)]
pub(super) struct Schema {
    pub root: Option<Shape>,
    pub required: BTreeMap<&'static str, Vec<&'static str>>,
}

impl Schema {
    /// Required fields of the struct named `name`.
    pub(super) fn required(&self, name: &str) -> &[&'static str] {
        self.required.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Probes `T` and returns its schema.
pub(super) fn schema_of<T: de::DeserializeOwned>() -> Schema {
    let ctx = Ctx::default();
    let root = Rc::new(RefCell::new(Shape::Any));
    let _ = T::deserialize(Probe {
        ctx: &ctx,
        out: root.clone(),
    });
    let root = root.borrow().clone();
    let mut structs = BTreeMap::new();
    collect_structs(&root, &mut structs);
    let mut required = BTreeMap::new();
    for (name, fields) in structs {
        required.insert(name, required_fields::<T>(&ctx, name, &fields));
    }
    Schema {
        root: Some(root),
        required,
    }
}

/// Probes `T` repeatedly with struct `name` given only the fields known to be required so far;
/// each run reports (at most) one more missing field. Bounded by the number of fields.
fn required_fields<T: de::DeserializeOwned>(
    ctx: &Ctx,
    name: &'static str,
    fields: &[&'static str],
) -> Vec<&'static str> {
    let mut required: Vec<&'static str> = Vec::new();
    for _ in 0..=fields.len() {
        *ctx.only.borrow_mut() = Some((name, required.iter().copied().collect()));
        let r = T::deserialize(Probe {
            ctx,
            out: Rc::new(RefCell::new(Shape::Any)),
        });
        match r {
            Err(ProbeError::Missing(f)) if fields.contains(&f) && !required.contains(&f) => {
                required.push(f)
            }
            _ => break,
        }
    }
    *ctx.only.borrow_mut() = None;
    // Report in declaration order.
    fields
        .iter()
        .copied()
        .filter(|f| required.contains(f))
        .collect()
}

fn collect_structs(shape: &Shape, out: &mut BTreeMap<&'static str, Vec<&'static str>>) {
    match shape {
        Shape::Option(s) | Shape::Seq(s) | Shape::Map(s) => collect_structs(s, out),
        Shape::Struct { name, fields } => {
            out.insert(name, fields.iter().map(|(f, _)| *f).collect());
            for (_, s) in fields {
                collect_structs(s, out);
            }
        }
        _ => {}
    }
}

#[derive(Default)]
struct Ctx {
    /// While finding required fields: the struct that gets only these fields.
    only: RefCell<Option<(&'static str, BTreeSet<&'static str>)>>,
}

/// Why a probe stopped; `Missing` is how required fields are found.
#[derive(Debug)]
enum ProbeError {
    Missing(&'static str),
    Other,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Missing(field) => write!(f, "missing field {field}"),
            ProbeError::Other => f.write_str("not probed"),
        }
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        ProbeError::Other
    }
    fn missing_field(field: &'static str) -> Self {
        ProbeError::Missing(field)
    }
}

type Slot = Rc<RefCell<Shape>>;

fn slot() -> Slot {
    Rc::new(RefCell::new(Shape::Any))
}

/// The probing deserializer: records what is asked for into `out`, then hands the visitor a
/// harmless sample value so the derived code carries on to the next field.
struct Probe<'c> {
    ctx: &'c Ctx,
    out: Slot,
}

impl Probe<'_> {
    fn set(&self, s: Shape) {
        *self.out.borrow_mut() = s;
    }
    fn int(&self, min: i128, max: i128) {
        self.set(Shape::Int { min, max });
    }
}

macro_rules! probe_int {
    ($($m:ident $t:ty),*) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
            self.int(<$t>::MIN as i128, <$t>::MAX as i128);
            v.visit_u8(1)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError::Other)
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
        self.set(Shape::Bool);
        v.visit_bool(false)
    }
    probe_int!(deserialize_i8 i8, deserialize_i16 i16, deserialize_i32 i32, deserialize_i64 i64,
        deserialize_u8 u8, deserialize_u16 u16, deserialize_u32 u32, deserialize_u64 u64);
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
        self.set(Shape::Float);
        v.visit_f32(1.0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
        self.set(Shape::Float);
        v.visit_f64(1.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
        self.set(Shape::Str);
        v.visit_char('x')
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
        self.set(Shape::Str);
        v.visit_str("x")
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
        self.set(Shape::Str);
        v.visit_str("x")
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError::Other)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError::Other)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
        let inner = slot();
        let r = v.visit_some(Probe {
            ctx: self.ctx,
            out: inner.clone(),
        });
        self.set(Shape::Option(Box::new(inner.borrow().clone())));
        r
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, ProbeError> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, ProbeError> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
        let elem = slot();
        let r = v.visit_seq(OneSeq {
            ctx: self.ctx,
            elem: Some(elem.clone()),
        });
        self.set(Shape::Seq(Box::new(elem.borrow().clone())));
        r
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError::Other)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError::Other)
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
        let value = slot();
        let r = v.visit_map(OneMap {
            ctx: self.ctx,
            value: value.clone(),
            state: 0,
        });
        self.set(Shape::Map(Box::new(value.borrow().clone())));
        r
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ProbeError> {
        let slots: Vec<Slot> = fields.iter().map(|_| slot()).collect();
        let only = match &*self.ctx.only.borrow() {
            Some((n, keep)) if *n == name => Some(keep.clone()),
            _ => None,
        };
        let order: Vec<usize> = (0..fields.len())
            .filter(|i| only.as_ref().is_none_or(|k| k.contains(fields[*i])))
            .collect();
        let r = v.visit_map(StructFields {
            ctx: self.ctx,
            fields,
            slots: slots.clone(),
            order,
            next: 0,
        });
        self.set(Shape::Struct {
            name,
            fields: fields
                .iter()
                .zip(&slots)
                .map(|(f, s)| (*f, s.borrow().clone()))
                .collect(),
        });
        r
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ProbeError> {
        self.set(Shape::Enum(variants));
        let first = variants.first().copied().ok_or(ProbeError::Other)?;
        v.visit_enum(UnitVariant(first))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
        v.visit_str("x")
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeError> {
        v.visit_unit()
    }
}

/// A list of one probed element.
struct OneSeq<'c> {
    ctx: &'c Ctx,
    elem: Option<Slot>,
}

impl<'de> de::SeqAccess<'de> for OneSeq<'_> {
    type Error = ProbeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ProbeError> {
        match self.elem.take() {
            Some(out) => seed.deserialize(Probe { ctx: self.ctx, out }).map(Some),
            None => Ok(None),
        }
    }
}

/// A mapping of one text key to one probed value.
struct OneMap<'c> {
    ctx: &'c Ctx,
    value: Slot,
    state: u8,
}

impl<'de> de::MapAccess<'de> for OneMap<'_> {
    type Error = ProbeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        if self.state > 0 {
            return Ok(None);
        }
        self.state = 1;
        seed.deserialize(IntoDeserializer::<ProbeError>::into_deserializer("X-Key"))
            .map(Some)
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, ProbeError> {
        seed.deserialize(Probe {
            ctx: self.ctx,
            out: self.value.clone(),
        })
    }
}

/// Every field of a struct (or, while finding required fields, only some), each probed.
struct StructFields<'c> {
    ctx: &'c Ctx,
    fields: &'static [&'static str],
    slots: Vec<Slot>,
    order: Vec<usize>,
    next: usize,
}

impl<'de> de::MapAccess<'de> for StructFields<'_> {
    type Error = ProbeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        let Some(&i) = self.order.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(IntoDeserializer::<ProbeError>::into_deserializer(
            self.fields[i],
        ))
        .map(Some)
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, ProbeError> {
        let i = self
            .order
            .get(self.next)
            .copied()
            .ok_or(ProbeError::Other)?;
        self.next += 1;
        seed.deserialize(Probe {
            ctx: self.ctx,
            out: self.slots[i].clone(),
        })
    }
}

/// The first variant of an enum, as a unit variant.
struct UnitVariant(&'static str);

impl<'de> de::EnumAccess<'de> for UnitVariant {
    type Error = ProbeError;
    type Variant = Self;
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), ProbeError> {
        let v = seed.deserialize(IntoDeserializer::<ProbeError>::into_deserializer(self.0))?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant {
    type Error = ProbeError;
    fn unit_variant(self) -> Result<(), ProbeError> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _: T) -> Result<T::Value, ProbeError> {
        Err(ProbeError::Other)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError::Other)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        transport: Kind,
        address: String,
        port: Option<u16>,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Kind {
        Udp,
        Tcp,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        listen: Vec<Inner>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        rate: f64,
    }

    #[test]
    fn probes_fields_types_and_required() {
        // 1. Probe a small nested type.
        let s = schema_of::<Outer>();
        // 2. The shape follows the Rust types.
        let Some(Shape::Struct { fields, .. }) = &s.root else {
            panic!("{:?}", s.root)
        };
        assert_eq!(fields[0].0, "listen");
        let Shape::Seq(inner) = &fields[0].1 else {
            panic!("{fields:?}")
        };
        let Shape::Struct {
            name,
            fields: inner,
        } = &**inner
        else {
            panic!("{inner:?}")
        };
        assert_eq!(*name, "Inner");
        assert_eq!(inner[0].1, Shape::Enum(&["udp", "tcp"]));
        assert_eq!(
            inner[2].1,
            Shape::Option(Box::new(Shape::Int { min: 0, max: 65535 }))
        );
        assert_eq!(fields[1].1, Shape::Map(Box::new(Shape::Str)));
        assert_eq!(fields[2].1, Shape::Float);
        // 3. Required: neither defaulted nor optional.
        assert_eq!(s.required("Outer"), ["listen", "rate"]);
        assert_eq!(s.required("Inner"), ["transport", "address"]);
    }
}
