//! The metrics listener: `GET /metrics` in the Prometheus text format, on a
//! socket of its own (kept off the media port, so that metrics are never
//! public by accident), served by one thread of its own.

use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

/// Scrapers served at once; more wait for their turn in the backlog.
const MAX_SCRAPERS: usize = 16;
/// A scraper's request head is due within this long.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves [`metrics::render`](crate::metrics::render) on `listener` from a
/// thread of its own until the process ends, and turns the metrics on
/// ([`metrics::install`](crate::metrics::install)). `GET` or `HEAD
/// /metrics` is answered 200; any other path 404, any other method 405.
pub fn serve_metrics(listener: TcpListener) -> std::io::Result<std::thread::JoinHandle<()>> {
    crate::metrics::install();
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("mediagate-metrics".into())
        .spawn(move || runtime.block_on(accept_loop(listener)))
}

async fn accept_loop(listener: TcpListener) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "metrics listener unusable");
            return;
        }
    };
    let places = Arc::new(Semaphore::new(MAX_SCRAPERS));
    loop {
        let Ok(place) = Arc::clone(&places).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer));
            let _ = conn.await;
            drop(place);
        });
    }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(respond(req.method(), req.uri().path()))
}

/// The answer to `method` `path` on the metrics listener.
fn respond(method: &Method, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match (method, path) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, crate::metrics::render()),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed\n".into(),
        ),
        _ => (StatusCode::NOT_FOUND, "not_found\n".into()),
    };
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    let content_type = if status == StatusCode::OK {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_and_head_of_metrics_are_answered() {
        crate::metrics::install();
        assert_eq!(respond(&Method::GET, "/metrics").status(), StatusCode::OK);
        assert_eq!(respond(&Method::HEAD, "/metrics").status(), StatusCode::OK);
        assert_eq!(
            respond(&Method::POST, "/metrics").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(respond(&Method::GET, "/").status(), StatusCode::NOT_FOUND);
    }
}
