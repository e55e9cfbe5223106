//! A tonic channel for unary calls that sends each request body as one HTTP/2 DATA frame
//! carrying END_STREAM.
//!
//! tonic encodes a unary request as a stream of one message and learns that the stream has ended
//! only when it polls it again, so hyper sends HEADERS, then DATA, then an empty DATA frame with
//! END_STREAM - three socket writes. A tonic server answers a unary call only after END_STREAM
//! (it waits for trailers), so the last frame costs the server one more wake-up per call. With the
//! body collected first (it is already encoded: collecting does not wait on anything) the data
//! goes out as one frame that ends the stream. On a 10-point collection (a round trip with no
//! search) this raised the 16-concurrent QPS from 18-20k to 21-29k in alternating runs
//! (docs/BENCHMARKS.md, issue 4).
//!
//! Not for client-streaming calls: collecting would hold the whole stream before sending any of it.

use http_body_util::{BodyExt, Full};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::transport::Channel;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`Channel`] whose unary requests go out as one frame; see the module docs.
#[derive(Clone, Debug)]
pub struct OneFrame(pub Channel);

impl Service<http::Request<Body>> for OneFrame {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // tower's rule: the service that was polled ready makes the call; a clone stays behind.
        let clone = self.0.clone();
        let mut ch = std::mem::replace(&mut self.0, clone);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            // An encoding error (a message over the size limit) is a Status; tonic finds it in
            // the error's source chain and returns it as such.
            let bytes = body.collect().await?.to_bytes();
            let req = http::Request::from_parts(parts, Body::new(Full::new(bytes)));
            ch.call(req).await.map_err(Into::into)
        })
    }
}
