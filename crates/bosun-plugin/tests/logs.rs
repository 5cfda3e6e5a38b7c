//! The plugin's stderr lines reach Bosun's `tracing` with their level, message and fields.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bosun_plugin::{LaunchConfig, Plugin, TransformClient};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn stderr_json_lines_are_logged_with_level_and_fields() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let config = LaunchConfig::new("ratelimit-cap", env!("CARGO_BIN_EXE_ratelimit-cap"));
    let plugin = tokio::time::timeout(Duration::from_secs(30), Plugin::launch(&config)).await.unwrap().unwrap();
    let mut client = TransformClient::new(plugin.channel());
    client.configure(r#"{"max_threshold": 42}"#).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains("configured")) {
            break line.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no log line in: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("plugin=\"ratelimit-cap\""), "{line}");
    assert!(line.contains("max_threshold=42"), "{line}");
    plugin.shutdown().await;
}
