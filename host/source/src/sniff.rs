//! Describing what a non-capture file looks like, so the error tells the user
//! what they pointed us at instead of just "bad magic".

/// `head` is up to the first 16 bytes of the (decompressed) stream.
pub(crate) fn describe(head: &[u8], gzipped: bool) -> String {
    let what = describe_plain(head);
    if gzipped {
        format!("gzip-compressed {what}")
    } else {
        what
    }
}

fn describe_plain(head: &[u8]) -> String {
    if head.is_empty() {
        return "empty file".to_string();
    }
    let texty = head
        .iter()
        .all(|&b| b.is_ascii_graphic() || b == b' ' || b == b'\t' || b == b'\n' || b == b'\r');
    if texty {
        let text = String::from_utf8_lossy(&head[..head.len().min(10)]);
        return format!("text starting with {:?}", text.as_ref());
    }
    let shown = &head[..head.len().min(4)];
    let hex: Vec<String> = shown.iter().map(|b| format!("{b:02x}")).collect();
    let hex = hex.join(" ");
    match known_kind(head) {
        Some(kind) => format!("bytes {hex} ({kind})"),
        None if head.len() < 4 => format!("bytes {hex} (too short for a capture header)"),
        None => format!("bytes {hex}"),
    }
}

fn known_kind(head: &[u8]) -> Option<&'static str> {
    const KINDS: &[(&[u8], &str)] = &[
        (b"\x7fELF", "an ELF file"),
        (b"\x89PNG", "a PNG image"),
        (b"PK\x03\x04", "a zip archive"),
        (b"\x28\xb5\x2f\xfd", "a zstd-compressed file"),
        (b"\xfd7zXZ", "an xz-compressed file"),
        (b"BZh", "a bzip2-compressed file"),
        (
            b"\xa1\xb2\xcd\x34",
            "a modified (Kuznetzov) pcap, unsupported",
        ),
        (
            b"\x34\xcd\xb2\xa1",
            "a modified (Kuznetzov) pcap, unsupported",
        ),
    ];
    KINDS
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|&(_, kind)| kind)
}
