//! Loading Envoy resources from a directory (owned by the resources work in progress).
