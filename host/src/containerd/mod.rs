//! A client of containerd's gRPC API over its unix socket: images,
//! content and events, the three services scanhost needs.
//!
//! The connection is made on first use and made again by itself after
//! containerd restarts; a call while containerd is away fails at once with
//! [`Code::Unavailable`]. Every call but `subscribe` names its namespace,
//! as containerd scopes images and content by namespace.

mod proto;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use tokio::runtime::Handle;
use tonic::codec::Streaming;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_prost::ProstCodec;

pub use proto::{Descriptor, Envelope, Image, ImageEvent, ReadContentResponse};
pub use tonic::Code;

/// How long a call that returns one answer may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer decoded: a listing of many thousand images is
/// larger than gRPC's default of 4 MiB.
const MAX_MESSAGE: usize = 256 << 20;

/// The header that carries the namespace of a call.
const NAMESPACE_HEADER: &str = "containerd-namespace";

/// A containerd daemon, reached at its socket.
#[derive(Clone)]
pub struct Client {
    address: PathBuf,
    channel: Channel,
    runtime: Handle,
}

/// A call to containerd that failed. Its message names the socket and
/// what was asked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("containerd at {address}: {call}: {message}", address = address.display())]
pub struct Error {
    pub address: PathBuf,
    pub call: String,
    pub code: Code,
    pub message: String,
}

impl Error {
    /// containerd does not have the thing asked for.
    pub fn is_not_found(&self) -> bool {
        self.code == Code::NotFound
    }

    /// The call failed for want of a working connection (containerd away,
    /// restarting, not answering), not for what it asked: asking again
    /// later may succeed.
    pub fn is_connection(&self) -> bool {
        matches!(
            self.code,
            Code::Unavailable
                | Code::Unknown
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Aborted
        )
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the containerd listening at `address`, whose
    /// connection runs on `runtime`. Nothing is connected until the first
    /// call.
    pub fn new(address: &Path, runtime: Handle) -> Client {
        let _entered = runtime.enter();
        let socket = address.to_path_buf();
        let connector = tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        });
        // The URI is required by the API and unused: the connector decides
        // where to connect.
        let channel = Endpoint::from_static("http://containerd.sock")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(connector);
        Client {
            address: address.to_path_buf(),
            channel,
            runtime,
        }
    }

    pub fn address(&self) -> &Path {
        &self.address
    }

    /// The runtime the connection runs on: synchronous readers wait on it.
    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// Every image of `namespace`.
    pub async fn list_images(&self, namespace: &str) -> Result<Vec<Image>, Error> {
        let call = || format!("list the images of namespace {namespace}");
        let request = proto::ListImagesRequest { filters: vec![] };
        let response: proto::ListImagesResponse = self
            .unary(namespace, request, proto::LIST_IMAGES)
            .await
            .map_err(|status| self.error(call(), status))?;
        Ok(response.images)
    }

    /// The image `name` of `namespace`, or none when there is none.
    pub async fn get_image(&self, namespace: &str, name: &str) -> Result<Option<Image>, Error> {
        let request = proto::GetImageRequest {
            name: name.to_owned(),
        };
        let answer: Result<proto::GetImageResponse, _> =
            self.unary(namespace, request, proto::GET_IMAGE).await;
        match answer {
            Ok(response) => Ok(response.image),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => {
                Err(self.error(format!("get image {name} of namespace {namespace}"), status))
            }
        }
    }

    /// The blob `digest` of `namespace`, as a stream of chunks.
    pub async fn read(
        &self,
        namespace: &str,
        digest: &str,
    ) -> Result<Streaming<ReadContentResponse>, Error> {
        let call = || format!("read blob {digest} of namespace {namespace}");
        let request = proto::ReadContentRequest {
            digest: digest.to_owned(),
            offset: 0,
            size: 0,
        };
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|err| self.error(call(), tonic::Status::unavailable(err.to_string())))?;
        let response = tokio::time::timeout(
            CALL_TIMEOUT,
            grpc.server_streaming(
                namespaced(namespace, request),
                PathAndQuery::from_static(proto::READ_CONTENT),
                ProstCodec::default(),
            ),
        )
        .await
        .map_err(|_| self.timeout(call()))?
        .map_err(|status| self.error(call(), status))?;
        Ok(response.into_inner())
    }

    /// The events of every namespace whose topic matches `filter`, e.g.
    /// `topic~="/images/"`. containerd answers only with the first event:
    /// do not wait for this call before doing anything else.
    pub async fn subscribe(&self, filter: &str) -> Result<Streaming<Envelope>, Error> {
        let call = || "follow events".to_owned();
        let request = tonic::Request::new(proto::SubscribeRequest {
            filters: vec![filter.to_owned()],
        });
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|err| self.error(call(), tonic::Status::unavailable(err.to_string())))?;
        let response = grpc
            .server_streaming(
                request,
                PathAndQuery::from_static(proto::SUBSCRIBE),
                ProstCodec::default(),
            )
            .await
            .map_err(|status| self.error(call(), status))?;
        Ok(response.into_inner())
    }

    async fn unary<Req, Resp>(
        &self,
        namespace: &str,
        request: Req,
        path: &'static str,
    ) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc =
            tonic::client::Grpc::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE);
        grpc.ready()
            .await
            .map_err(|err| tonic::Status::unavailable(err.to_string()))?;
        let call = grpc.unary(
            namespaced(namespace, request),
            PathAndQuery::from_static(path),
            ProstCodec::default(),
        );
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(response) => Ok(response?.into_inner()),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                "no answer in {}s",
                CALL_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The error of `call`, in the words a person reading the log needs.
    pub fn error(&self, call: String, status: tonic::Status) -> Error {
        let message = match status.code() {
            Code::Unavailable => format!("containerd is not reachable: {}", status.message()),
            // What an open stream ends with when containerd goes away.
            Code::Unknown if status.message().contains("transport") => {
                "the connection to containerd was lost".to_owned()
            }
            code => format!("{} ({code:?})", status.message()),
        };
        Error {
            address: self.address.clone(),
            call,
            code: status.code(),
            message,
        }
    }

    fn timeout(&self, call: String) -> Error {
        self.error(
            call,
            tonic::Status::deadline_exceeded(format!("no answer in {}s", CALL_TIMEOUT.as_secs())),
        )
    }
}

fn namespaced<T>(namespace: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    match namespace.parse() {
        Ok(value) => {
            request.metadata_mut().insert(NAMESPACE_HEADER, value);
        }
        // Not a valid header value: containerd will refuse the call for
        // want of a namespace, which names the problem well enough.
        Err(_) => tracing::warn!(namespace, "namespace cannot be sent to containerd"),
    }
    request
}

/// The scheme of references to containerd images.
pub const SCHEME: &str = "containerd://";

/// The reference scanhost gives the image `name` of `namespace`:
/// `containerd://NAMESPACE/NAME`, as `scanhost scan` takes it. Two
/// namespaces may hold different images under one name.
pub fn reference(namespace: &str, name: &str) -> String {
    format!("{SCHEME}{namespace}/{name}")
}

/// The socket path of a containerd address, written as a path or as
/// `unix://PATH`.
pub fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

/// The namespace and the image name of a `containerd://NAMESPACE/NAME`
/// reference; none when it is not one or a part is empty.
pub fn parse_reference(reference: &str) -> Option<(&str, &str)> {
    let rest = reference.strip_prefix(SCHEME)?;
    let (namespace, name) = rest.split_once('/')?;
    (!namespace.is_empty() && !name.is_empty()).then_some((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_namespace_and_image() {
        let reference = reference("k8s.io", "docker.io/library/debian:12");
        assert_eq!(reference, "containerd://k8s.io/docker.io/library/debian:12");
        assert_eq!(
            parse_reference(&reference),
            Some(("k8s.io", "docker.io/library/debian:12"))
        );
        assert_eq!(parse_reference("containerd://k8s.io/"), None);
        assert_eq!(parse_reference("containerd:///debian:12"), None);
        assert_eq!(parse_reference("/srv/rootfs"), None);
    }

    #[test]
    fn addresses_may_be_written_as_unix_urls() {
        assert_eq!(
            socket_path("unix:///run/containerd/containerd.sock"),
            "/run/containerd/containerd.sock"
        );
        assert_eq!(
            socket_path("/run/containerd/containerd.sock"),
            "/run/containerd/containerd.sock"
        );
    }
}
