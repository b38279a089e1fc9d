//! The process's open-files limit, shared out between the descriptors the
//! file cache keeps, the files open for responses, and the connections'
//! sockets: what a server embedding the service calls once at start
//! (`mediagate serve` does).

use crate::files::cache::CacheLimits;
use crate::server::ServerConfig;

/// Raises the soft open-files limit to the hard one (as nginx's
/// `worker_rlimit_nofile` does) and shares it out, less 64 for everything
/// else: at most a quarter for the descriptors the file cache keeps, half
/// of the rest for files open for responses, and the connection cap below
/// that, so that a flood of connections cannot starve the server of
/// descriptors for the files it serves. Settings already lower stay.
pub fn fit_open_files(config: &mut ServerConfig, cache: &mut CacheLimits) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum {
        if limit.current.is_some_and(|soft| soft < hard) {
            limit.current = Some(hard);
            if setrlimit(Resource::Nofile, limit).is_err() {
                limit = getrlimit(Resource::Nofile);
            }
        }
    }
    if let Some(soft) = limit.current {
        share(soft, config, cache);
    }
}

/// Shares `soft` descriptors out (see [`fit_open_files`]).
fn share(soft: u64, config: &mut ServerConfig, cache: &mut CacheLimits) {
    let fitted = cache.within_open_files(soft);
    if fitted.max_open_files < cache.max_open_files {
        tracing::info!(
            max_open_files = fitted.max_open_files,
            open_files = soft,
            "file cache's descriptors lowered to fit the open-files limit"
        );
    }
    *cache = fitted;
    let usable = soft.saturating_sub(64);
    let kept = cache.max_open_files as u64;
    // Each connection needs a socket and, while streaming, a file.
    let fit = ((usable - kept) / 2).max(16) as usize;
    if config.max_connections > fit {
        // The default, sized from memory, is often above this: expected,
        // not news.
        tracing::debug!(
            max_connections = fit,
            open_files = soft,
            "connection cap lowered to fit the open-files limit"
        );
        config.max_connections = fit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_shared_between_the_cache_responses_and_connections() {
        let shared = |soft| {
            let (mut config, mut cache) = (ServerConfig::default(), CacheLimits::default());
            share(soft, &mut config, &mut cache);
            (
                cache.max_open_files,
                cache.max_streaming_files,
                config.max_connections,
            )
        };
        // Plenty: the defaults stand.
        let defaults = (
            CacheLimits::default().max_open_files,
            CacheLimits::default().max_streaming_files,
            ServerConfig::default().max_connections,
        );
        assert_eq!(shared(1 << 20), defaults);
        // A common 1024: a quarter of what is usable for the cache, half of
        // the rest for files being sent and half for connections.
        assert_eq!(shared(1024), (240, 360, 360));
        let (kept, files, conns) = shared(4096);
        assert!((kept + files + conns) as u64 <= 4096 - 64);
        // Absurdly low: still serves.
        assert_eq!(shared(10), (0, 0, 16));
    }
}
