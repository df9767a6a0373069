//! A fake containerd for fault injection: a bare HTTP/2 server on a unix
//! socket that answers every call at once with an empty success. A list
//! of images is empty, and an event subscription ends as soon as it is
//! made, as a containerd shutting down ends it.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The calls the fake answered.
#[derive(Default)]
pub struct Calls {
    pub subscriptions: AtomicUsize,
    pub others: AtomicUsize,
}

/// Serves at `socket` on threads of its own, for as long as the test
/// runs; returns what it counts.
pub fn serve(socket: &Path) -> Arc<Calls> {
    let listener = UnixListener::bind(socket).unwrap();
    let calls = Arc::new(Calls::default());
    let counted = calls.clone();
    std::thread::spawn(move || {
        for connection in listener.incoming().flatten() {
            let calls = counted.clone();
            std::thread::spawn(move || {
                let _ = connection_loop(connection, &calls);
            });
        }
    });
    calls
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;
const ACK: u8 = 1;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// An HPACK literal header field, not indexed, without Huffman coding.
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0, name.len() as u8];
    out.extend(name.as_bytes());
    out.push(value.len() as u8);
    out.extend(value.as_bytes());
    out
}

fn connection_loop(mut connection: UnixStream, calls: &Calls) -> std::io::Result<()> {
    let mut preface = [0; 24];
    connection.read_exact(&mut preface)?;
    connection.write_all(&frame(SETTINGS, 0, 0, &[]))?;
    // `:status: 200` is entry 8 of the static table.
    let mut head = vec![0x88];
    head.extend(literal("content-type", "application/grpc"));
    let trailers = literal("grpc-status", "0");
    let mut bodies: std::collections::HashMap<u32, Vec<u8>> = Default::default();
    loop {
        let mut header = [0; 9];
        connection.read_exact(&mut header)?;
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let (kind, flags) = (header[3], header[4]);
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        connection.read_exact(&mut payload)?;
        match kind {
            SETTINGS if flags & ACK == 0 => connection.write_all(&frame(SETTINGS, ACK, 0, &[]))?,
            PING if flags & ACK == 0 => connection.write_all(&frame(PING, ACK, 0, &payload))?,
            DATA => {
                bodies.entry(stream).or_default().extend(&payload);
                if flags & END_STREAM == 0 {
                    continue;
                }
                let body = bodies.remove(&stream).unwrap_or_default();
                let mut answer = frame(HEADERS, END_HEADERS, stream, &head);
                // Only a subscription's filter names a topic.
                if body.windows(5).any(|w| w == b"topic") {
                    calls.subscriptions.fetch_add(1, Ordering::SeqCst);
                } else {
                    calls.others.fetch_add(1, Ordering::SeqCst);
                    // One empty message: an empty list.
                    answer.extend(frame(DATA, 0, stream, &[0, 0, 0, 0, 0]));
                }
                answer.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &trailers));
                connection.write_all(&answer)?;
            }
            _ => {}
        }
    }
}
