//! `--metrics ADDR` of the echo and chat examples: a Prometheus recorder for the crate's metrics
//! (feature `metrics`), served at `http://ADDR/metrics` in Prometheus' text format.
//!
//! The library only counts, through the `metrics` facade; the exporter is the application's
//! choice (here `metrics-exporter-prometheus`, a dev-dependency).

/// What [`recorder`] gives: the exporter's handle, which renders the page.
#[cfg(feature = "metrics")]
pub(crate) type Recorder = metrics_exporter_prometheus::PrometheusHandle;

/// Without the `metrics` feature there is nothing to serve.
#[cfg(not(feature = "metrics"))]
pub(crate) type Recorder = std::convert::Infallible;

/// Installs the Prometheus recorder for the whole process.
#[cfg(feature = "metrics")]
pub(crate) fn recorder(_addr: &str) -> Result<Recorder, String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))
}

/// Without the `metrics` feature: the error `--metrics` gives.
#[cfg(not(feature = "metrics"))]
pub(crate) fn recorder(_addr: &str) -> Result<Recorder, String> {
    Err("--metrics needs the `metrics` feature (cargo run --example NAME --features metrics)".to_owned())
}

/// Binds `addr` and serves `GET /metrics` there (404 for anything else) until the process ends;
/// returns the address bound (port 0 picks a free one).
#[cfg(feature = "metrics")]
pub(crate) async fn serve(addr: &str, recorder: Recorder) -> std::io::Result<std::net::SocketAddr> {
    use hyper::{Request, Response, StatusCode, body::Incoming, header, service::service_fn};
    use hyper_util::rt::TokioIo;
    use tower_websockets::handshake::HandshakeBody;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    // Histograms' summaries need upkeep now and then.
    let upkeep = recorder.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let recorder = recorder.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let response = if req.uri().path() == "/metrics" {
                        let mut response =
                            Response::new(HandshakeBody::from(bytes::Bytes::from(recorder.render())));
                        response.headers_mut().insert(
                            header::CONTENT_TYPE,
                            header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                        );
                        response
                    } else {
                        let mut response = Response::new(HandshakeBody::from("not found"));
                        *response.status_mut() = StatusCode::NOT_FOUND;
                        response
                    };
                    std::future::ready(Ok::<_, std::convert::Infallible>(response))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

/// Without the `metrics` feature [`recorder`] never gives one.
#[cfg(not(feature = "metrics"))]
pub(crate) async fn serve(_addr: &str, recorder: Recorder) -> std::io::Result<std::net::SocketAddr> {
    match recorder {}
}
