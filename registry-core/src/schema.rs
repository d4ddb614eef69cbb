//! Compiling a task's JSON Schema, once per task, with nothing fetched.
//!
//! Many tasks of a repository share a schema (the same input object, an empty output): a
//! schema is compiled once per process for each canonical text ([`compile_shared`]), and the
//! compiled validator is shared, since compiling costs far more than checking a case.
//!
//! A schema is compiled before any test case is checked against it, and a schema that does
//! not compile (an invalid `pattern`, a `$ref` to nothing) is reported at the pointer that
//! is wrong. References are resolved inside the schema only: a `$ref` to `http://…`,
//! `https://…` or `file://…` is refused, never fetched, whatever features `jsonschema` was
//! built with elsewhere in the program.

use jsonschema::{Retrieve, Uri};
use serde_json::Value;
use std::sync::Arc;

/// Why a schema does not compile, with where in the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// A JSON pointer into the schema.
    pub pointer: String,
    pub message: String,
}

/// A compiled schema, or why there is none. Cheap to clone.
pub type Compiled = Result<Arc<jsonschema::Validator>, SchemaError>;

/// Refuses every external document: a task's schema must stand on its own.
struct RefuseExternal;

impl Retrieve for RefuseExternal {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("`{uri}` is outside the schema; remote and file references are never fetched").into())
    }
}

/// Distinct schemas kept compiled; past this many the cache starts afresh (a tree whose
/// every task has a schema of its own gains nothing from it, and must not grow it).
const SHARED_SCHEMAS: usize = 512;

/// Compiled schemas by canonical text.
static SHARED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, Compiled>>> =
    std::sync::LazyLock::new(Default::default);

/// Compiles `schema`, or answers the validator compiled before for the same schema (by
/// its canonical text). What compiling answers depends on the schema alone, so sharing it
/// changes no outcome.
pub fn compile_shared(schema: &Value) -> Compiled {
    let canonical = crate::canonical_json(schema);
    let canonical = canonical.as_str();
    let shared = || SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(compiled) = shared().get(canonical) {
        return compiled.clone();
    }
    // Compiled outside the lock: two threads may compile one text at once, and one wins.
    let compiled = compile(schema);
    let mut kept = shared();
    if kept.len() >= SHARED_SCHEMAS {
        kept.clear();
    }
    kept.insert(canonical.to_owned(), compiled.clone());
    compiled
}

/// Compiles `schema`. A panic inside `jsonschema` (it has had some on odd inputs) is this
/// schema's error, not the sync's end.
pub fn compile(schema: &Value) -> Compiled {
    let built = std::panic::catch_unwind(|| jsonschema::options().with_retriever(RefuseExternal).build(schema));
    match built {
        Ok(Ok(validator)) => Ok(Arc::new(validator)),
        Ok(Err(error)) => {
            let pointer = match error.instance_path().as_str() {
                "" => error.schema_path().as_str().to_owned(),
                path => path.to_owned(),
            };
            Err(SchemaError {
                pointer,
                message: error.to_string(),
            })
        }
        Err(_) => Err(SchemaError {
            pointer: String::new(),
            message: "the schema cannot be compiled (the validator crashed on it)".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_patterns_missing_targets_and_external_references_do_not_compile() {
        for schema in [
            json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "(((("}}}),
            json!({"$ref": "#/definitions/missing"}),
            json!({"properties": {"a": {"$ref": "http://127.0.0.1:9/schema.json"}}}),
            json!({"$ref": "file:///etc/passwd"}),
        ] {
            let error = compile(&schema).expect_err(&schema.to_string());
            assert!(!error.message.is_empty());
        }
    }

    #[test]
    fn one_schema_text_is_compiled_once_and_shared() {
        let schema = json!({"type": "object", "properties": {"shared-test": {"type": "number"}}});
        let (one, two) = (compile_shared(&schema), compile_shared(&schema));
        assert!(Arc::ptr_eq(one.as_ref().unwrap(), two.as_ref().unwrap()));
        let other = json!({"type": "object", "properties": {"shared-test": {"type": "string"}}});
        let three = compile_shared(&other).unwrap();
        assert!(!Arc::ptr_eq(one.as_ref().unwrap(), &three));
        assert!(three.is_valid(&json!({"shared-test": "x"})));
        assert!(!one.unwrap().is_valid(&json!({"shared-test": "x"})));
    }

    #[test]
    fn a_local_reference_compiles() {
        let schema = json!({
            "$defs": {"n": {"type": "integer"}},
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/n"}}
        });
        let validator = compile(&schema).unwrap();
        assert!(validator.is_valid(&json!({"a": 1})));
        assert!(!validator.is_valid(&json!({"a": "x"})));
    }
}
