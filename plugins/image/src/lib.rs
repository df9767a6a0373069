//! Container images as scanhost reads them: the OCI and Docker documents,
//! the choice of a platform, and the root filesystem that the layers make.
//!
//! The crate is plain Rust with no I/O of its own, compiled natively for
//! the host (which reads indexes of image layouts) and for `wasm32-wasip2`
//! for the image plugins (which use all of it). Blobs come from the
//! caller, as a function or through the [`Content`] trait, so the same
//! code serves both.
//!
//! # Design
//!
//! Reading an image takes three steps, one module each:
//!
//! 1. [`oci`] parses the JSON documents: index (Docker manifest list),
//!    manifest and config, in the OCI and Docker formats. It knows nothing
//!    of where they come from.
//! 2. [`resolve()`] walks from the digest an image is known by to the
//!    manifest for one platform and its config, through nested indexes,
//!    with the platform rules container runtimes apply. Errors of the
//!    caller's `fetch` come back unchanged in [`ResolveError::Fetch`], so
//!    that the caller can tell a blob that is not there yet (worth a retry)
//!    from a corrupt image.
//! 3. [`overlay::Overlay`] applies the layers, bottom first, as the
//!    uncompressed tar streams the host serves, with the overlay rules of
//!    the OCI image spec (whiteouts, opaque directories, replacement). It
//!    keeps only directories, symlinks and the files a `wanted` function
//!    names (the analyzers pass [`scanhost_analyzers::wanted`]), so memory
//!    stays small whatever the size of the image, and it skips the data of
//!    every other entry with forward seeks, so those bytes are not even
//!    copied into the plugin. The result implements
//!    [`scanhost_analyzers::Root`], which is all the analyzers need.
//!
//! [`read_image`] puts the three together for a plugin. The plugin gives
//! the image's content as a [`Content`] (in practice its bindings of the
//! `content` import, behind a few lines of adapter) and gets back the
//! resolved image and its root, or an [`ImageError`] that keeps an error
//! of the content (which the plugin maps to retryable or fatal) apart from
//! a fault of the image itself. It also fixes which error wins when a
//! layer fails, so that every plugin reports the same cause.
//!
//! Faults that leave the result usable (an entry climbing out of the root,
//! a malformed whiteout) are warnings, each naming the layer and the path;
//! only an unusable document or an unreadable tar is an error.
//!
//! # Example
//!
//! ```no_run
//! # use scanhost_image::{Content, LayerStream};
//! # struct Layout;
//! # struct Layer;
//! # impl Content for Layout {
//! #     type Error = std::io::Error;
//! #     type Layer = Layer;
//! #     fn read_blob(&self, _: &str, _: u64) -> std::io::Result<Vec<u8>> { todo!() }
//! #     fn open_layer(&self, _: &str, _: &str) -> std::io::Result<Layer> { todo!() }
//! # }
//! # impl LayerStream for Layer {
//! #     type Error = std::io::Error;
//! #     fn read(&mut self, _: u64) -> std::io::Result<Vec<u8>> { todo!() }
//! #     fn skip(&mut self, _: u64) -> std::io::Result<u64> { todo!() }
//! #     fn finish(&mut self) -> std::io::Result<()> { todo!() }
//! # }
//! # let layout = Layout;
//! use scanhost_image::oci::Platform;
//! use scanhost_image::{ImageError, read_image};
//!
//! let platform = Platform {
//!     os: "linux".to_string(),
//!     architecture: "amd64".to_string(),
//!     variant: None,
//! };
//! // `layout` is a `Content`; the example of `read_image` implements one.
//! match read_image(&layout, "sha256:0123abcd", &platform, scanhost_analyzers::wanted) {
//!     Ok((_, root)) => {
//!         let inventory = scanhost_analyzers::analyze(&root);
//!     }
//!     // Only the content's own error says whether a retry can help.
//!     Err(ImageError::Content(err)) => eprintln!("cannot read the image: {err}"),
//!     Err(ImageError::Invalid(reason)) => eprintln!("unusable image: {reason}"),
//! }
//! ```

mod content;
mod contract;
pub mod oci;
pub mod overlay;
mod platform;
mod read;
mod resolve;

pub use content::{Content, LayerStream};
pub use read::{ImageError, MAX_DOCUMENT, read_image};
pub use resolve::{ResolveError, Resolved, resolve};
