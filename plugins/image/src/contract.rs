//! [`Content`](crate::Content) over the scanner contract's imports, for a
//! plugin that generated its bindings with `wit_bindgen::generate!` at the
//! root of its crate: the bindings are the plugin's own types, so the
//! glue is written where they are, by [`contract_content!`].

/// Declares the unit struct `$host`: [`Content`](crate::Content) over the
/// contract's `content` import (blobs and layers) and `cache` import (what
/// [`read_image`](crate::read_image) made of each layer, kept across
/// scans), with [`LayerStream`](crate::LayerStream) for the `layer-reader`
/// resource, and `$host::failure`, the scan error for a failure of the
/// content: missing or unreadable content may be there on the next
/// attempt (retryable), wrong content stays wrong (fatal).
///
/// Call it at the root of the crate, beside `wit_bindgen::generate!`:
///
/// ```ignore
/// wit_bindgen::generate!({ world: "scanner", path: "wit" });
/// scanhost_image::contract_content!(Host);
///
/// let (_, root) = read_image(&Host, &image.digest, &platform, wanted)
///     .map_err(|err| match err {
///         ImageError::Content(err) => Host::failure(err),
///         ImageError::Invalid(reason) => ScanError::Fatal(reason),
///     })?;
/// ```
// `crate` is meant: the bindings are the calling crate's.
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! contract_content {
    ($host:ident) => {
        /// The `content` and `cache` imports, as `read_image` reads an
        /// image through them.
        struct $host;

        impl $crate::Content for $host {
            type Error = crate::scanhost::plugin::content::ContentError;
            type Layer = crate::scanhost::plugin::content::LayerReader;

            fn read_blob(&self, digest: &str, max: u64) -> Result<Vec<u8>, Self::Error> {
                crate::scanhost::plugin::content::read_blob(digest, max)
            }

            fn open_layer(&self, digest: &str, diff_id: &str) -> Result<Self::Layer, Self::Error> {
                crate::scanhost::plugin::content::open_layer(digest, diff_id)
            }

            fn cached(&self, key: &str) -> Option<Vec<u8>> {
                crate::scanhost::plugin::cache::get(key)
            }

            fn keep(&self, key: &str, value: &[u8]) {
                crate::scanhost::plugin::cache::set(key, value);
            }
        }

        impl $crate::LayerStream for crate::scanhost::plugin::content::LayerReader {
            type Error = crate::scanhost::plugin::content::ContentError;

            fn read(&mut self, len: u64) -> Result<Vec<u8>, Self::Error> {
                Self::read(self, len)
            }

            fn skip(&mut self, len: u64) -> Result<u64, Self::Error> {
                Self::skip(self, len)
            }

            fn finish(&mut self) -> Result<(), Self::Error> {
                Self::finish(self)
            }
        }

        impl $host {
            /// The scan error for a failure of the content.
            fn failure(
                err: crate::scanhost::plugin::content::ContentError,
            ) -> crate::scanhost::plugin::types::ScanError {
                use crate::scanhost::plugin::content::ContentError;
                use crate::scanhost::plugin::types::ScanError;
                match err {
                    ContentError::NotFound(message) | ContentError::Io(message) => {
                        ScanError::Retryable(message)
                    }
                    ContentError::Invalid(message) => ScanError::Fatal(message),
                }
            }
        }
    };
}
