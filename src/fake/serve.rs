//! The accept loops every fake server shares: one task per connection, all of them ended by
//! the fake's cancellation token.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Accepts connections on `listener` until `cancel`, serving each on its own task.
pub(super) async fn accept_each<F, Fut>(
    listener: TcpListener,
    cancel: CancellationToken,
    mut serve: F,
) where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            // Transient accept errors (e.g. too many open files) must not end the server.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(serve(stream));
    }
}

/// Serves HTTP/1.1 requests with `handle` until `cancel`, which also closes open connections.
pub(super) async fn serve_http1<H, Fut>(listener: TcpListener, cancel: CancellationToken, handle: H)
where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    accept_each(listener, cancel.clone(), move |stream| {
        let (handle, cancel) = (handle.clone(), cancel.clone());
        async move {
            let _ = stream.set_nodelay(true);
            let service = service_fn(move |req| {
                let answer = handle(req);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = cancel.cancelled() => {}
                _ = conn => {}
            }
        }
    })
    .await;
}
