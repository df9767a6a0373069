//! A scanner built for contract version 1.0.0, which the host refuses.

wit_bindgen::generate!({ world: "scanner", path: "wit" });

struct Incompatible;

impl exports::scanhost::plugin::plugin::Guest for Incompatible {
    fn describe() -> String {
        "incompatible".to_string()
    }

    fn scan(_target: String) -> Result<String, String> {
        Ok(String::new())
    }
}

export!(Incompatible);
