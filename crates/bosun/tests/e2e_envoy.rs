//! End to end with a real Envoy over State-of-the-World ADS: Bosun serves a listener, a route and
//! an EDS cluster from a resources directory; traffic follows edits of the directory; a resource
//! Envoy rejects is NACKed, shown in `/status`, not resent, and traffic keeps flowing.

mod common;

use common::envoy::{AdsApi, envoy_follows_the_resources_directory};

#[test]
fn envoy_follows_the_resources_directory_over_sotw() {
    envoy_follows_the_resources_directory(AdsApi::Sotw);
}
