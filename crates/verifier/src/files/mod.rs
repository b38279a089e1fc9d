//! Files: the media root and what is opened beneath it (`fs`), the cache
//! of file versions with their headers, bytes and descriptors (`cache`),
//! the bound on files open for responses (`budget`), and the type a file
//! is served as (`content_type`). Nothing here knows about requests or
//! connections.

pub(crate) mod budget;
pub(crate) mod cache;
pub(crate) mod content_type;
pub(crate) mod fs;
