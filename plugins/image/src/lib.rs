//! Container images as scanhost reads them: the OCI and Docker documents,
//! the choice of a platform, and the root filesystem that the layers make.
//!
//! The crate is plain Rust with no I/O of its own, compiled natively for
//! the host (which reads indexes of image layouts) and for `wasm32-wasip2`
//! for the image-scanner plugin (which uses all of it). Blobs come from a
//! function the caller passes and layers from a reader it opens, so the
//! same code serves both.
//!
//! # Design
//!
//! Scanning an image takes three steps, one module each:
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
//! Faults that leave the result usable (an entry climbing out of the root,
//! a malformed whiteout) are warnings, each naming the layer and the path;
//! only an unusable document or an unreadable tar is an error.
//!
//! # Example
//!
//! ```no_run
//! # fn fetch(digest: &str) -> Result<Vec<u8>, std::io::Error> { todo!() }
//! # fn open_layer(digest: &str) -> std::io::Cursor<Vec<u8>> { todo!() }
//! use scanhost_image::oci::Platform;
//! use scanhost_image::overlay::Overlay;
//! use scanhost_image::resolve;
//!
//! let platform = Platform {
//!     os: "linux".to_string(),
//!     architecture: "amd64".to_string(),
//!     variant: None,
//! };
//! let image = resolve("sha256:0123abcd", &platform, fetch)?;
//! let mut overlay = Overlay::new(scanhost_analyzers::wanted);
//! for layer in &image.manifest.layers {
//!     overlay.apply_layer(&layer.digest, open_layer(&layer.digest))?;
//! }
//! let inventory = scanhost_analyzers::analyze(&overlay);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod oci;
pub mod overlay;
mod platform;
mod resolve;

pub use resolve::{ResolveError, Resolved, resolve};
