//! The compression bomb of RFC 7692's security considerations, measured: 64 MiB of zeros
//! compressed to about 64 KiB, sent to a socket whose message limit is 1 MiB. The socket must
//! close with 1009 having allocated about the limit, never the 64 MiB. dhat's allocator counts
//! every allocation of this test process (server and client alike), so this binary holds this
//! one test.

mod common;

use bytes::Bytes;
use common::{Behaviour, TestServer, echo_service, next_end};
use flate2::{Compress, FlushCompress};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::{
    connect_async,
    tungstenite::{
        Message as TMessage,
        client::IntoClientRequest,
        protocol::frame::{
            Frame, FrameHeader,
            coding::{Data, OpCode},
        },
    },
};
use tower_websockets::{Compression, Error, WebSocketLayer};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const LIMIT: usize = 1 << 20;

/// 64 MiB of zeros, deflated with a sync flush and the trailer removed.
fn bomb() -> Bytes {
    let zeros = vec![0u8; 64 << 20];
    let mut compress = Compress::new(flate2::Compression::new(9), false);
    let mut out = Vec::with_capacity(256 << 10);
    compress.compress_vec(&zeros, &mut out, FlushCompress::Sync).unwrap();
    assert_eq!(compress.total_in(), zeros.len() as u64, "all in, in one call");
    out.truncate(out.len() - 4);
    Bytes::from(out)
}

#[test]
fn a_compression_bomb_is_refused_having_allocated_about_the_limit() {
    let bomb = bomb();
    assert!(bomb.len() < 100 << 10, "{} bytes", bomb.len());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let compression = Compression::enabled().min_message_size(usize::MAX);
        let layer =
            WebSocketLayer::builder().compression(compression).max_message_size(LIMIT).build().unwrap();
        let (service, mut ends) = echo_service(layer, Behaviour::default());
        let server = TestServer::start(service).await;
        let mut request = server.ws_url("/ws").into_client_request().unwrap();
        request.headers_mut().insert("sec-websocket-extensions", "permessage-deflate".parse().unwrap());
        let (mut client, _) = connect_async(request).await.unwrap();

        // Count from here: the connection is open, the bomb made.
        let profiler = dhat::Profiler::builder().testing().build();
        let header = FrameHeader {
            is_final: true,
            rsv1: true,
            rsv2: false,
            rsv3: false,
            opcode: OpCode::Data(Data::Binary),
            mask: None,
        };
        client.send(TMessage::Frame(Frame::from_payload(header, bomb))).await.unwrap();
        let close = loop {
            if let TMessage::Close(frame) = client.next().await.expect("an answer").expect("no error") {
                break frame;
            }
        };
        assert_eq!(close.map(|frame| u16::from(frame.code)), Some(1009));
        match next_end(&mut ends).await.error {
            Some(Error::MessageTooBig { max, .. }) => assert_eq!(max, LIMIT),
            other => panic!("{other:?}"),
        }
        let stats = dhat::HeapStats::get();
        eprintln!("peak heap while refusing the bomb: {} bytes (limit {LIMIT})", stats.max_bytes);
        // tungstenite gathers the inflated fragments up to the limit, beside the bomb itself
        // and one chunk of inflated output: about 1.2 MB measured, never near 64 MiB.
        dhat::assert!(stats.max_bytes < 2 * LIMIT, "peak {} bytes", stats.max_bytes);
        drop(profiler);
    });
}
