//! PostgreSQL (Debian `postgresql`), run as an unprivileged user.
