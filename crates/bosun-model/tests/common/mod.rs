//! Helpers shared by the tests: documents written as YAML, errors compared as `field: reason`.

#![allow(dead_code)]

use bosun_model::Document;

/// Parses a YAML document.
pub fn parse(yaml: &str) -> Result<Document, Vec<String>> {
    let value: serde_json::Value = serde_yaml::from_str(yaml).expect("test YAML");
    Document::parse(value).map_err(|invalid| invalid.errors.iter().map(ToString::to_string).collect())
}

/// Parses a document that must be valid.
pub fn good(yaml: &str) -> Document {
    match parse(yaml) {
        Ok(document) => document,
        Err(errors) => panic!("expected a valid document, got {errors:#?}"),
    }
}

/// The errors of a document that must be invalid.
pub fn bad(yaml: &str) -> Vec<String> {
    match parse(yaml) {
        Ok(document) => panic!("expected errors, got {document:#?}"),
        Err(errors) => errors,
    }
}

/// Checks that a valid document survives being written out and read back.
pub fn round_trips(document: &Document) {
    let again = Document::parse(document.to_json()).expect("the written document reads back");
    assert_eq!(&again, document);
}
