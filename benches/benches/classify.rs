//! What the layer costs per request: classifying a request (plain or WebSocket) through
//! `WebSocketLayer`'s `call` with a trivial inner service, the public `is_websocket_request`, and
//! accepting a handshake with `WebSocketUpgrade` (`from_request` + `on_upgrade`).
//!
//! ```text
//! cargo bench -p tower-websockets-benches --bench classify
//! ```
//!
//! Before the timings it prints the heap allocations each path makes per request, counted by a
//! counting global allocator.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    convert::Infallible,
    future::{Ready, ready},
    hint::black_box,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use http::{Request, Response};
use tower::{Layer as _, Service, ServiceExt as _, service_fn};
use tower_websockets::{WebSocketLayer, WebSocketUpgrade, handshake::is_websocket_request};

/// Counts allocations, to report allocations per request.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A plain browser-like GET, with the headers a real one has.
fn plain_request() -> Request<()> {
    Request::get("/api/items?page=2")
        .header("host", "example.com")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
        .header("accept", "application/json")
        .header("accept-language", "en-US,en;q=0.5")
        .header("accept-encoding", "gzip, deflate, br")
        .header("connection", "keep-alive")
        .header("cookie", "session=0123456789abcdef")
        .body(())
        .expect("valid request")
}

/// A browser's WebSocket handshake.
fn websocket_request() -> Request<()> {
    Request::get("/ws")
        .header("host", "example.com")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
        .header("accept", "*/*")
        .header("origin", "https://example.com")
        .header("connection", "keep-alive, Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-extensions", "permessage-deflate")
        .body(())
        .expect("valid request")
}

/// The trivial inner service hands the request back inside the response, so that the request
/// is dropped outside the timed code, with the output.
type Echoed = Response<Request<()>>;

fn inner()
-> impl Service<Request<()>, Response = Echoed, Error = Infallible, Future = Ready<Result<Echoed, Infallible>>>
+ Clone {
    service_fn(|req: Request<()>| ready(Ok::<_, Infallible>(Response::new(req))))
}

/// Allocations made by `f`, averaged over many calls.
fn allocations_per_call<T>(mut make: impl FnMut() -> T, mut f: impl FnMut(T)) -> f64 {
    const CALLS: u64 = 1000;
    let inputs: Vec<T> = (0..CALLS).map(|_| make()).collect();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for input in inputs {
        f(input);
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / CALLS as f64
}

fn report_allocations() {
    let layer = WebSocketLayer::new();
    let mut bare = inner();
    let mut layered = layer.layer(inner());
    // Frees are not counted: outputs are simply dropped.
    let rows = [
        (
            "inner service alone, plain",
            allocations_per_call(plain_request, |req| drop(bare.call(req).now_or_never())),
        ),
        (
            "through WebSocketLayer, plain",
            allocations_per_call(plain_request, |req| drop(layered.call(req).now_or_never())),
        ),
        (
            "inner service alone, WebSocket",
            allocations_per_call(websocket_request, |req| drop(bare.call(req).now_or_never())),
        ),
        (
            "through WebSocketLayer, WebSocket",
            allocations_per_call(websocket_request, |req| drop(layered.call(req).now_or_never())),
        ),
        (
            "is_websocket_request, plain",
            allocations_per_call(plain_request, |req| {
                black_box(is_websocket_request(&req));
            }),
        ),
        (
            "is_websocket_request, WebSocket",
            allocations_per_call(websocket_request, |req| {
                black_box(is_websocket_request(&req));
            }),
        ),
    ];
    eprintln!("heap allocations per request (counted by a counting global allocator):");
    for (name, allocations) in rows {
        eprintln!("  {name:<42} {allocations:.2}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let guard = runtime.enter();
    let accept = allocations_per_call(accept_request, |mut req| {
        let upgrade = WebSocketUpgrade::from_request(&mut req).expect("valid handshake");
        drop(black_box(upgrade.on_upgrade(|_socket| async {})));
    });
    drop(guard);
    drain(&runtime);
    eprintln!("  {:<42} {accept:.2}", "accept: from_request + on_upgrade (+ spawn)");
    eprintln!("  (building the requests is not counted)");
}

/// A WebSocket request as the layer hands it to the handler, with a hyper `OnUpgrade` (of no
/// connection: it fails at once) in its extensions.
fn accept_request() -> Request<()> {
    let slot = Arc::new(Mutex::new(None));
    let keep = slot.clone();
    let mut layered = WebSocketLayer::new().layer(service_fn(move |req: Request<()>| {
        *keep.lock().expect("not poisoned") = Some(req);
        ready(Ok::<_, Infallible>(Response::new(())))
    }));
    let mut req = websocket_request();
    let on_upgrade = hyper::upgrade::on(Request::new(()));
    req.extensions_mut().insert(on_upgrade);
    drop(layered.call(req).now_or_never());
    slot.lock().expect("not poisoned").take().expect("the layer let the handshake through")
}

/// Runs the tasks `on_upgrade` spawned (they fail at once: there is no connection).
fn drain(runtime: &tokio::runtime::Runtime) {
    runtime.block_on(async {
        while tokio::runtime::Handle::current().metrics().num_alive_tasks() > 0 {
            tokio::task::yield_now().await;
        }
    });
}

fn classify(c: &mut Criterion) {
    report_allocations();

    let mut group = c.benchmark_group("classify");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    let layer = WebSocketLayer::new();
    for (kind, make) in [("plain", plain_request as fn() -> Request<()>), ("websocket", websocket_request)] {
        let mut bare = inner();
        group.bench_function(format!("{kind}/inner service alone"), |b| {
            b.iter_batched(make, |req| bare.call(req).now_or_never(), BatchSize::SmallInput)
        });
        let mut layered = layer.layer(inner());
        group.bench_function(format!("{kind}/through WebSocketLayer"), |b| {
            b.iter_batched(make, |req| layered.call(req).now_or_never(), BatchSize::SmallInput)
        });
        let mut oneshot = layer.layer(inner());
        group.bench_function(format!("{kind}/through WebSocketLayer, ServiceExt::ready + call"), |b| {
            b.iter_batched(
                make,
                |req| {
                    let service = oneshot.ready().now_or_never().expect("ready").expect("infallible");
                    service.call(req).now_or_never()
                },
                BatchSize::SmallInput,
            )
        });
        let req = make();
        group.bench_function(format!("{kind}/is_websocket_request"), |b| {
            b.iter(|| is_websocket_request(black_box(&req)))
        });
    }

    // Accepting: WebSocketUpgrade::from_request + on_upgrade (the 101 response, the accept key,
    // and spawning the task that waits for hyper's upgrade).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    group.bench_function("websocket/accept (from_request + on_upgrade)", |b| {
        b.iter_custom(|iters| {
            let requests: Vec<_> = (0..iters).map(|_| accept_request()).collect();
            let guard = runtime.enter();
            let start = Instant::now();
            let mut responses = Vec::with_capacity(requests.len());
            for mut req in requests {
                let upgrade = WebSocketUpgrade::from_request(&mut req).expect("valid handshake");
                responses.push(upgrade.on_upgrade(|_socket| async {}));
            }
            let elapsed = start.elapsed();
            drop(guard);
            drain(&runtime);
            drop(responses);
            elapsed
        })
    });
    group.finish();
}

/// The layer in a whole axum app, in process (no network): `GET /` answered by a handler, the
/// response body read to its end, as hyper would. Without the layer, with it on the `Router`
/// (`Router::layer`, as the README shows), and with it around the `Router`.
fn axum_app(c: &mut Criterion) {
    use axum::{Router, body::Body, routing::get};
    use http_body_util::BodyExt as _;

    fn get_root() -> Request<Body> {
        Request::get("/")
            .header("host", "example.com")
            .header("user-agent", "bench")
            .header("accept", "*/*")
            .body(Body::empty())
            .expect("valid request")
    }

    /// Serves one request, its body read to the end (and dropped by the caller).
    type Serve = Box<dyn Fn(Request<Body>) -> Option<http_body_util::Collected<bytes::Bytes>>>;
    fn serve<S, B>(service: S) -> Serve
    where
        S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + 'static,
        S::Future: 'static,
        B: http_body::Body<Data = bytes::Bytes> + 'static,
    {
        Box::new(move |req| {
            let response = service.clone().oneshot(req).now_or_never()?.ok()?;
            response.into_body().collect().now_or_never()?.ok()
        })
    }

    let app: Router = Router::new().route("/", get(|| async { "Hello, World!" }));
    let apps: [(&str, Serve); 4] = [
        ("without the layer", serve(app.clone())),
        ("Router::layer(WebSocketLayer)", serve(app.clone().layer(WebSocketLayer::new()))),
        // Any layer on a Router costs something: the identity layer shows how much.
        (
            "Router::layer(Identity), for comparison",
            serve(app.clone().layer(tower::layer::util::Identity::new())),
        ),
        ("WebSocketLayer around the Router", serve(WebSocketLayer::new().layer(app.clone()))),
    ];
    eprintln!("heap allocations per request, axum app, GET / (response body read to its end):");
    for (name, service) in &apps {
        eprintln!("  {name:<42} {:.2}", allocations_per_call(get_root, |req| drop(service(req))));
    }

    let mut group = c.benchmark_group("axum app (GET /)");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (name, service) in &apps {
        group.bench_function(*name, |b| b.iter_batched(get_root, service, BatchSize::SmallInput));
    }
    group.finish();
}

criterion_group!(benches, classify, axum_app);
criterion_main!(benches);
