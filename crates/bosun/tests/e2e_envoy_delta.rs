//! End to end with a real Envoy over Delta (incremental) ADS: the same scenario as
//! `e2e_envoy.rs` — traffic flows, endpoint and route changes are followed, a NACKed listener is
//! shown in `/status` and not resent.

mod common;

use common::envoy::{AdsApi, envoy_follows_the_resources_directory};

#[test]
fn envoy_follows_the_resources_directory_over_delta() {
    envoy_follows_the_resources_directory(AdsApi::Delta);
}
