//! A vendor validator for Glass (`glass:metadef@0.1.0`): a public image must carry a
//! non-empty `os_distro` property. Built outside Glass's workspaces; see the README.
//!
//! The contract is read from `../../wit/glass-metadef@0.1.0` (a vendor keeps a copy of that
//! folder beside its crate; the package is versioned and never changes once released).

wit_bindgen::generate!({
    path: "../../wit/glass-metadef@0.1.0",
    world: "glass:metadef/validator",
});

use exports::glass::metadef::validate::{
    Change, Guest, Namespace, Property, ValidatorInfo, Violation,
};

struct RequireOsDistro;

export!(RequireOsDistro);

/// The image attribute `name` as JSON text, if the image has it.
fn attribute<'a>(image: &'a [Property], name: &str) -> Option<&'a str> {
    image
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.as_str())
}

impl Guest for RequireOsDistro {
    fn info() -> ValidatorInfo {
        ValidatorInfo {
            name: "validator-require-os-distro".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn validate(
        image: Vec<Property>,
        _change: Vec<Change>,
        _namespaces: Vec<Namespace>,
    ) -> Result<(), Vec<Violation>> {
        // Values are JSON text: a string arrives with its quotes.
        let public = attribute(&image, "visibility") == Some("\"public\"");
        let distro = attribute(&image, "os_distro").filter(|v| !matches!(*v, "\"\"" | "null"));
        if public && distro.is_none() {
            return Err(vec![Violation {
                property: "os_distro".into(),
                rule: "required".into(),
                message: "a public image must carry os_distro (for example 'ubuntu')".into(),
            }]);
        }
        Ok(())
    }
}
