//! The messages of containerd's gRPC API that scanhost uses, declared by
//! hand with their field numbers from containerd's `.proto` files
//! (`api/services/{images,content,events}/v1`, `api/types/descriptor.proto`),
//! so that building needs no protobuf compiler. Fields scanhost does not
//! read are left out: protobuf skips unknown fields.

use std::collections::HashMap;

/// `containerd.types.Descriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Descriptor {
    #[prost(string, tag = "1")]
    pub media_type: String,
    #[prost(string, tag = "2")]
    pub digest: String,
    #[prost(int64, tag = "3")]
    pub size: i64,
}

/// `containerd.services.images.v1.Image`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(map = "string, string", tag = "2")]
    pub labels: HashMap<String, String>,
    #[prost(message, optional, tag = "3")]
    pub target: Option<Descriptor>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListImagesRequest {
    #[prost(string, repeated, tag = "1")]
    pub filters: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListImagesResponse {
    #[prost(message, repeated, tag = "1")]
    pub images: Vec<Image>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetImageRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetImageResponse {
    #[prost(message, optional, tag = "1")]
    pub image: Option<Image>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadContentRequest {
    #[prost(string, tag = "1")]
    pub digest: String,
    #[prost(int64, tag = "2")]
    pub offset: i64,
    /// 0 reads to the end.
    #[prost(int64, tag = "3")]
    pub size: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadContentResponse {
    #[prost(int64, tag = "1")]
    pub offset: i64,
    #[prost(bytes = "bytes", tag = "2")]
    pub data: bytes::Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeRequest {
    #[prost(string, repeated, tag = "1")]
    pub filters: Vec<String>,
}

/// `containerd.services.events.v1.Envelope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(string, tag = "3")]
    pub topic: String,
    #[prost(message, optional, tag = "4")]
    pub event: Option<prost_types::Any>,
}

/// `ImageCreate`, `ImageUpdate` and `ImageDelete` all carry the image's
/// name as field 1.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageEvent {
    #[prost(string, tag = "1")]
    pub name: String,
}

pub const LIST_IMAGES: &str = "/containerd.services.images.v1.Images/List";
pub const GET_IMAGE: &str = "/containerd.services.images.v1.Images/Get";
pub const READ_CONTENT: &str = "/containerd.services.content.v1.Content/Read";
pub const SUBSCRIBE: &str = "/containerd.services.events.v1.Events/Subscribe";
