//! Repairs that give a mutated input a valid checksum again. A fuzzer almost never
//! guesses a CRC-32, so without them nearly every mutation would stop at the CRC check
//! and the parsers behind it would go unexplored.

use tinyvae_shared::model::HEADER_LEN;
use tinyvae_shared::protocol::FRAME_CRC;

/// Offset of the total length in the model header.
const LENGTH_AT: usize = 56;

/// `bytes` with the model header's length field and the CRC trailer made to match,
/// or `None` when it is too short to have both.
pub fn model_image(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < HEADER_LEN + 4 {
        return None;
    }
    let mut fixed = bytes.to_vec();
    let len = u32::try_from(fixed.len()).ok()?;
    fixed[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&len.to_le_bytes());
    let body = fixed.len() - 4;
    let crc = FRAME_CRC.checksum(&fixed[..body]);
    fixed[body..].copy_from_slice(&crc.to_le_bytes());
    Some(fixed)
}

/// A frame body (COBS, no terminator) whose payload's last four bytes are replaced by
/// the CRC of the rest, or `None` when the body is not COBS or holds no CRC.
pub fn frame_body(body: &[u8]) -> Option<Vec<u8>> {
    let mut payload = cobs::decode_vec(body).ok()?;
    let data = payload.len().checked_sub(4)?;
    let crc = FRAME_CRC.checksum(&payload[..data]);
    payload[data..].copy_from_slice(&crc.to_le_bytes());
    Some(cobs::encode_vec(&payload))
}

/// A line (frames separated by zeros) with every frame body repaired as
/// [`frame_body`] does; bodies that cannot be repaired are left as they are.
pub fn line(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut segments = bytes.split(|&b| b == 0).peekable();
    while let Some(segment) = segments.next() {
        match frame_body(segment) {
            Some(fixed) => out.extend_from_slice(&fixed),
            None => out.extend_from_slice(segment),
        }
        if segments.peek().is_some() {
            out.push(0);
        }
    }
    out
}

/// A safetensors file from a header given as text: when `bytes` starts with one JSON
/// value, the file is its length (u64, little endian), that JSON and the bytes after
/// it. The fuzzer can then change the header (and the metadata inside it) freely,
/// where in the file itself any change of the header's length breaks the prefix.
pub fn safetensors(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.first() != Some(&b'{') {
        return None;
    }
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>();
    values.next()?.ok()?;
    let end = values.byte_offset();
    let mut file = (end as u64).to_le_bytes().to_vec();
    file.extend_from_slice(bytes);
    Some(file)
}

/// The inverse of [`safetensors`] for a seed: the file without its length prefix.
pub fn unwrap_safetensors(file: &[u8]) -> Option<Vec<u8>> {
    let len = u64::from_le_bytes(file.get(..8)?.try_into().ok()?);
    let end = 8usize.checked_add(usize::try_from(len).ok()?)?;
    file.get(end..)?;
    Some(file[8..].to_vec())
}
