//! RabbitMQ facts for the inspector: the server version (read from the
//! AMQP handshake's server properties, no login needed) and per-queue
//! counts through the queue adapter's passive declares.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `version` server property of the broker at `host:port`, read from
/// its `connection.start` frame. The connection is closed right after.
pub async fn server_version(host_port: &str) -> Result<String, String> {
    let fut = async {
        let mut sock = tokio::net::TcpStream::connect(host_port)
            .await
            .map_err(|e| e.to_string())?;
        sock.write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 8192];
        let mut filled = 0;
        loop {
            let n = sock
                .read(&mut buf[filled..])
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            filled += n;
            if let Some(v) = find_version(&buf[..filled]) {
                return Ok(v);
            }
            if filled == buf.len() {
                break;
            }
        }
        Err("no version in the broker's connection.start".to_string())
    };
    tokio::time::timeout(Duration::from_secs(2), fut)
        .await
        .map_err(|_| "no answer within 2 s".to_string())?
}

/// Find the `version` long-string field of an AMQP field table.
pub fn find_version(frame: &[u8]) -> Option<String> {
    let needle = b"\x07versionS";
    let at = frame.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let len = u32::from_be_bytes(frame.get(at..at + 4)?.try_into().ok()?) as usize;
    let text = frame.get(at + 4..at + 4 + len)?;
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_found_in_a_field_table() {
        let mut frame = b"\x01\x00\x00junk\x07productS\x00\x00\x00\x08RabbitMQ".to_vec();
        frame.extend_from_slice(b"\x07versionS\x00\x00\x00\x063.10.8\x08platform");
        assert_eq!(find_version(&frame).as_deref(), Some("3.10.8"));
        assert_eq!(find_version(b"\x07versionS\x00\x00\x00\x09short"), None);
        assert_eq!(find_version(b"nothing"), None);
    }
}
