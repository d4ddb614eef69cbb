//! Compiling a task's JSON Schema, once per task, with nothing fetched.
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
