//! [`WebSocketService`], the service [`WebSocketLayer`](crate::WebSocketLayer) wraps around yours,
//! with its [`ResponseFuture`] and [`ResponseBody`]: the layer's plumbing, which a program names
//! in type signatures, if at all.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{
    HeaderValue, Request, Response, StatusCode,
    header::{RETRY_AFTER, WWW_AUTHENTICATE},
};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{
    auth::{Identity, without_query_param},
    handshake::is_upgrade_attempt,
    lifecycle::{ClientKey, Shared, Slot, peer_addr},
    origin::OriginRefusal,
    response::{HandshakeBody, text_response},
};

/// What the layer leaves in the extensions of a WebSocket request it let through, for
/// [`WebSocketUpgrade`](crate::WebSocketUpgrade) to find: the options, and the connection slot
/// the request holds until its socket ends.
#[derive(Debug, Clone)]
pub(crate) struct WebSocketContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) slot: Arc<Slot>,
    /// What the layer's authentication function returned, when the layer has one.
    pub(crate) identity: Option<Identity>,
}

/// `Retry-After` for WebSocket requests refused with 503, in seconds.
const RETRY_AFTER_SECONDS: &str = "5";

/// The service made by [`WebSocketLayer`](crate::WebSocketLayer): it wraps your service `S`.
///
/// See the layer for what it does. Requests that are not WebSocket handshakes reach `S`
/// untouched, and so do handshakes the layer lets through (with what
/// [`WebSocketUpgrade`](crate::WebSocketUpgrade) needs in their extensions). The others are
/// answered by the layer itself, without calling `S`: `403 Forbidden` for an origin that is not
/// allowed, `503 Service Unavailable` at the connection limit or during a shutdown.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use tower::{Layer, ServiceExt, service_fn};
/// use tower_websockets::WebSocketLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = WebSocketLayer::builder().allowed_origins(["https://example.com"]).build()?;
/// let service = layer.layer(service_fn(|req: http::Request<()>| async move {
///     let page = format!("page {}", req.uri().path());
///     Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(page))))
/// }));
///
/// // An ordinary request, from any origin, reaches the inner service.
/// let request = http::Request::get("/home").header("origin", "https://evil.example").body(())?;
/// let response = service.oneshot(request).await?;
/// assert_eq!(response.into_body().collect().await?.to_bytes(), "page /home");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct WebSocketService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> WebSocketService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service, the one the layer was applied to.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service, dropping this one's share of the layer's state.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Classifies the request and either calls the inner service or answers it directly (see
/// [`WebSocketService`]). Readiness is the inner service's.
///
/// `S: Clone + Send + 'static` and a `Send + 'static` request body: with
/// [`authenticate`](crate::WebSocketLayerBuilder::authenticate), the inner service is called after
/// an asynchronous step, so an upgrade request takes the service that was made ready (a clone is
/// left in its place, as tower's own middleware does) into a boxed `Send` future. Ordinary
/// requests, and every request of a layer that does not authenticate, never clone it.
impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for WebSocketService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        if !is_upgrade_attempt(req.method(), req.headers(), req.extensions()) {
            return ResponseFuture::inner(self.inner.call(req));
        }

        let tracker = &self.shared.tracker;
        if tracker.is_shutting_down() {
            tracing::debug!(path = %req.uri().path(), "refused WebSocket request: shutting down");
            crate::metrics::handshake_refused("shutting_down", StatusCode::SERVICE_UNAVAILABLE);
            return ResponseFuture::ready(unavailable("the server is shutting down"));
        }

        let policy = &self.shared.config.origins;
        let decision = if policy.needs_parts() {
            let (parts, body) = req.into_parts();
            let decision = policy.check_parts(&parts);
            req = Request::from_parts(parts, body);
            decision
        } else {
            policy.check_headers(req.uri(), req.headers())
        };

        if let Err(refusal) = decision {
            tracing::debug!(
                origin = ?req.headers().get_all(http::header::ORIGIN).iter().collect::<Vec<_>>(),
                path = %req.uri().path(),
                reason = refusal.reason(),
                "refused WebSocket request: origin not allowed"
            );
            tracker.count_refused_by_origin();
            let body = match refusal {
                OriginRefusal::CrossOrigin(reason) => HandshakeBody::from(reason),
                other => HandshakeBody::from_static(other.reason_static()),
            };
            return ResponseFuture::ready(text_response(StatusCode::FORBIDDEN, body));
        }

        let Some(authenticator) = &self.shared.config.authenticator else {
            return match admit(&self.shared, req, None) {
                Ok(req) => ResponseFuture::inner(self.inner.call(req)),
                Err(refusal) => ResponseFuture::ready(refusal.into_response()),
            };
        };

        // Authenticate, then admit and call the service made ready (tower's clone-and-replace).
        let (parts, body) = req.into_parts();
        let authenticating = authenticator.authenticate(&parts);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        ResponseFuture::authenticating(Box::pin(async move {
            let identity = match authenticating.await {
                Ok(identity) => identity,
                Err(rejection) => {
                    let (status, reason) = rejection.into_parts();
                    tracing::debug!(
                        path = %parts.uri.path(),
                        status = status.as_u16(),
                        reason = %reason,
                        "refused WebSocket request: authentication"
                    );
                    shared.tracker.count_refused_by_auth(status);
                    let mut response =
                        text_response(status, HandshakeBody::from(Bytes::from(reason.into_owned())));
                    if status == StatusCode::UNAUTHORIZED {
                        // RFC 9110 §15.5.2: a 401 names a scheme. Browsers never prompt for Bearer.
                        response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    }
                    return Err(response);
                }
            };
            let mut req = Request::from_parts(parts, body);
            identity.insert_into(req.extensions_mut());
            let req = admit(&shared, req, Some(identity)).map_err(Refusal::into_response)?;
            Ok(inner.call(req))
        }))
    }
}

/// Lets an upgrade request that passed the origin policy (and authentication) through: removes
/// the token's query parameter, counts it for its client, takes a connection slot and leaves the
/// context for the extractor. The refusal when shutting down, or at a connection limit.
fn admit<B>(
    shared: &Arc<Shared>,
    mut req: Request<B>,
    identity: Option<Identity>,
) -> Result<Request<B>, Refusal> {
    if shared.tracker.is_shutting_down() {
        tracing::debug!(path = %req.uri().path(), "refused WebSocket request: shutting down");
        crate::metrics::handshake_refused("shutting_down", StatusCode::SERVICE_UNAVAILABLE);
        return Err(Refusal::Unavailable("the server is shutting down"));
    }
    if let Some(name) = &shared.config.token_query_param {
        if let Some(uri) = without_query_param(req.uri(), name) {
            *req.uri_mut() = uri;
        }
    }
    let mut client = None;
    if let Some(limit) = shared.config.max_connections_per_client {
        let (back, key) = client_key(shared, req);
        req = back;
        if let Some(key) = key {
            let Some(slot) = shared.reserve_client(key, limit) else {
                tracing::debug!(path = %req.uri().path(), "refused WebSocket request: client connection limit reached");
                shared.tracker.count_refused_by_client_limit();
                return Err(Refusal::TooManyFromClient);
            };
            client = Some(slot);
        }
    }
    let Some(slot) = shared.reserve_with(client) else {
        tracing::debug!(path = %req.uri().path(), "refused WebSocket request: connection limit reached");
        shared.tracker.count_refused_by_limit();
        return Err(Refusal::Unavailable("too many WebSocket connections"));
    };
    req.extensions_mut().insert(WebSocketContext { shared: shared.clone(), slot: Arc::new(slot), identity });
    Ok(req)
}

/// Why [`admit`] refused a request.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// 503: shutting down, or the connection limit.
    Unavailable(&'static str),
    /// 429: the client's connection limit.
    TooManyFromClient,
}

impl Refusal {
    fn into_response(self) -> Response<HandshakeBody> {
        match self {
            Self::Unavailable(reason) => unavailable(reason),
            Self::TooManyFromClient => {
                let mut response = text_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many WebSocket connections from this client",
                );
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
                response
            }
        }
    }
}

/// The client's key for `max_connections_per_client`: the application's function, or the peer's
/// IP address from the extensions. `None` (warned once) when there is none.
fn client_key<B>(shared: &Shared, req: Request<B>) -> (Request<B>, Option<ClientKey>) {
    let (req, key) = match &shared.config.client_key {
        Some(function) => {
            // The function takes the head: the request is moved apart and back, not copied.
            let (parts, body) = req.into_parts();
            let key = (function.0)(&parts).map(|key| ClientKey::Custom(key.into_boxed_str()));
            (Request::from_parts(parts, body), key)
        }
        None => {
            let key = peer_addr(req.extensions()).map(|addr| ClientKey::of_ip(addr.ip()));
            (req, key)
        }
    };
    if key.is_none() && shared.tracker.first_without_client_key() {
        tracing::warn!(
            "max_connections_per_client: a WebSocket request without a client key was let in uncounted \
             (put the peer's SocketAddr in the request's extensions, or set client_key); logged once"
        );
    }
    (req, key)
}

/// `503 Service Unavailable` with `Retry-After`.
fn unavailable(reason: &'static str) -> Response<HandshakeBody> {
    let mut response = text_response(StatusCode::SERVICE_UNAVAILABLE, reason);
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    response
}

pin_project! {
    /// The response future of [`WebSocketService`]: the inner service's future, or a response the
    /// layer gave itself, ready at once; with
    /// [`authenticate`](crate::WebSocketLayerBuilder::authenticate), an upgrade request's
    /// authentication first (boxed), then one of those.
    ///
    /// Its output is the inner service's response with the body wrapped in a [`ResponseBody`],
    /// or the inner service's error.
    ///
    /// ```
    /// use std::{convert::Infallible, time::Duration};
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    /// use tower_websockets::{WebSocketLayer, service::ResponseFuture};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = WebSocketLayer::new();
    /// layer.shutdown_handle().trigger();
    /// let mut service = layer.layer(service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, Infallible>(http::Response::new(Full::<Bytes>::default()))
    /// }));
    ///
    /// // During a shutdown, the layer refuses new WebSockets itself.
    /// let request = http::Request::get("/ws").header("upgrade", "websocket").body(())?;
    /// let future: ResponseFuture<_> = service.ready().await?.call(request);
    /// let response = future.await?;
    /// assert_eq!(response.status(), 503);
    /// assert_eq!(response.headers()["retry-after"], "5");
    /// # Ok(())
    /// # }
    /// ```
    pub struct ResponseFuture<F> {
        #[pin]
        kind: FutureKind<F>,
    }
}

pin_project! {
    #[project = FutureKindProj]
    enum FutureKind<F> {
        Inner { #[pin] future: F },
        Ready { response: Option<Response<HandshakeBody>> },
        Authenticating { future: Pin<Box<dyn Future<Output = Result<F, Response<HandshakeBody>>> + Send>> },
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            FutureKind::Inner { .. } => "inner",
            FutureKind::Ready { .. } => "ready",
            FutureKind::Authenticating { .. } => "authenticating",
        };
        f.debug_struct("ResponseFuture").field("kind", &kind).finish()
    }
}

impl<F> ResponseFuture<F> {
    fn inner(future: F) -> Self {
        Self { kind: FutureKind::Inner { future } }
    }

    fn ready(response: Response<HandshakeBody>) -> Self {
        Self { kind: FutureKind::Ready { response: Some(response) } }
    }

    fn authenticating(
        future: Pin<Box<dyn Future<Output = Result<F, Response<HandshakeBody>>> + Send>>,
    ) -> Self {
        Self { kind: FutureKind::Authenticating { future } }
    }
}

/// Resolves to the inner service's response, its body wrapped in a [`ResponseBody`], or to the
/// inner service's error.
impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut kind = self.as_mut().project().kind;
            let next = match kind.as_mut().project() {
                FutureKindProj::Inner { future } => {
                    return future.poll(cx).map_ok(|response| {
                        response.map(|body| ResponseBody { kind: BodyKind::Inner { body } })
                    });
                }
                FutureKindProj::Ready { response } => {
                    let response = response.take().expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(
                        response.map(|body| ResponseBody { kind: BodyKind::Text { body } })
                    ));
                }
                FutureKindProj::Authenticating { future } => match ready!(future.as_mut().poll(cx)) {
                    Ok(future) => FutureKind::Inner { future },
                    Err(response) => FutureKind::Ready { response: Some(response) },
                },
            };
            kind.set(next);
        }
    }
}

pin_project! {
    /// The response body of [`WebSocketService`]: the inner service's body, untouched, or the
    /// short text of a response the layer gave itself (such as a 403 for a refused origin).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// use tower_websockets::{WebSocketLayer, service::ResponseBody};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = WebSocketLayer::builder().allowed_origins(["https://example.com"]).build()?;
    /// let service = layer.layer(service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, Infallible>(http::Response::new(Full::<Bytes>::default()))
    /// }));
    ///
    /// let request = http::Request::get("/ws")
    ///     .header("upgrade", "websocket")
    ///     .header("origin", "https://evil.example")
    ///     .body(())?;
    /// let response = service.oneshot(request).await?;
    /// assert_eq!(response.status(), 403);
    /// let body: ResponseBody<Full<Bytes>> = response.into_body();
    /// assert_eq!(body.collect().await?.to_bytes(), "origin not allowed");
    /// # Ok(())
    /// # }
    /// ```
    pub struct ResponseBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project! {
    #[project = BodyKindProj]
    enum BodyKind<B> {
        Inner { #[pin] body: B },
        Text { #[pin] body: HandshakeBody },
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            BodyKind::Inner { .. } => "inner",
            BodyKind::Text { .. } => "text",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

/// The frames, end and size hint of the inner body, or of the layer's own text.
impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            BodyKindProj::Inner { body } => body.poll_frame(cx),
            BodyKindProj::Text { body } => body.poll_frame(cx).map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Inner { body } => body.is_end_stream(),
            BodyKind::Text { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Inner { body } => body.size_hint(),
            BodyKind::Text { body } => body.size_hint(),
        }
    }
}
