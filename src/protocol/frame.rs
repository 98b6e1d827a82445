//! Length-prefixed frames: a 4-byte big-endian size, then that many bytes.
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A negative size prefix: Kafka's `InvalidReceiveException` ("Invalid receive (size = -1)").
    #[error("invalid frame size {size}: negative")]
    Negative { size: i32 },
    /// Larger than `socket_request_max_bytes` (Kafka's socket.request.max.bytes).
    #[error("invalid frame size {size}: larger than the limit of {max} bytes (network.socket_request_max_bytes)")]
    TooLarge { size: i32, max: usize },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame ({got} of {want} bytes)")]
    Truncated { got: usize, want: usize },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame. `Ok(None)` means the peer closed the connection cleanly between frames.
///
/// The size is checked before any buffer is allocated, so a hostile size prefix costs nothing.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, max_size: usize) -> Result<Option<Bytes>, FrameError> {
    let mut size_buf = [0u8; 4];
    let mut filled = 0;
    while filled < 4 {
        let n = reader.read(&mut size_buf[filled..]).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated { got: filled, want: 4 })
            };
        }
        filled += n;
    }
    let size = i32::from_be_bytes(size_buf);
    if size < 0 {
        return Err(FrameError::Negative { size });
    }
    // Lossless: size is non-negative here.
    let want = size as usize;
    if want > max_size {
        return Err(FrameError::TooLarge { size, max: max_size });
    }
    // read_buf fills spare capacity without zeroing it first (a measurable cost on 1 MiB batches).
    let mut body = BytesMut::with_capacity(want);
    while body.len() < want {
        let missing = want - body.len();
        let n = reader.read_buf(&mut (&mut body).limit(missing)).await?;
        if n == 0 {
            return Err(FrameError::Truncated { got: body.len(), want });
        }
    }
    Ok(Some(body.freeze()))
}

/// True when `buffered` already holds at least one whole frame, so the caller may keep
/// processing before flushing its responses.
pub fn holds_complete_frame(buffered: &[u8]) -> bool {
    if buffered.len() < 4 {
        return false;
    }
    let size = i32::from_be_bytes([buffered[0], buffered[1], buffered[2], buffered[3]]);
    size >= 0 && buffered.len() - 4 >= size as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: usize) -> Result<Option<Bytes>, FrameError> {
        let mut r = bytes;
        read_frame(&mut r, max).await
    }

    #[tokio::test]
    async fn reads_a_frame_and_then_clean_eof() {
        let mut data = 3i32.to_be_bytes().to_vec();
        data.extend_from_slice(b"abc");
        let mut r = &data[..];
        assert_eq!(
            read_frame(&mut r, 10).await.unwrap().unwrap(),
            Bytes::from_static(b"abc")
        );
        assert!(read_frame(&mut r, 10).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rejects_negative_and_oversized_sizes() {
        assert!(matches!(
            read(&(-1i32).to_be_bytes(), 10).await,
            Err(FrameError::Negative { size: -1 })
        ));
        assert!(matches!(
            read(&11i32.to_be_bytes(), 10).await,
            Err(FrameError::TooLarge { size: 11, max: 10 })
        ));
    }

    #[tokio::test]
    async fn reports_truncation_in_size_and_body() {
        assert!(matches!(
            read(&[0, 0], 10).await,
            Err(FrameError::Truncated { got: 2, want: 4 })
        ));
        let mut data = 5i32.to_be_bytes().to_vec();
        data.extend_from_slice(b"ab");
        assert!(matches!(
            read(&data, 10).await,
            Err(FrameError::Truncated { got: 2, want: 5 })
        ));
    }

    #[test]
    fn complete_frame_detection() {
        assert!(!holds_complete_frame(&[0, 0, 0]));
        assert!(holds_complete_frame(&[0, 0, 0, 0]));
        assert!(!holds_complete_frame(&[0, 0, 0, 2, 1]));
        assert!(holds_complete_frame(&[0, 0, 0, 2, 1, 2, 3]));
        assert!(!holds_complete_frame(&[0xff, 0xff, 0xff, 0xff, 1]));
    }
}
