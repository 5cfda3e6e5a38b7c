//! etcd (Debian `etcd-server`): one member or a cluster.
