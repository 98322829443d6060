//! GGUF and safetensors headers from arbitrary bytes, through `modelfile::detect` and
//! `detect_from_prefix`. A layout that comes back must be one ingest can trust: the header starts
//! at 0, tensors are sorted, non-empty, disjoint, after the header and inside the file; cut points
//! and tensor lookups agree with it; a prefix that parses gives what the whole file gives, and so
//! does `detect_by_prefix` reading the file; and the chunker cuts the file along it without
//! crossing a tensor border, the same whether it sees the whole file or windows of it (as `add`
//! reads it).
//!
//! Input: a byte choosing the prefix length (as a share of the rest) and the window size, then
//! the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelfs::chunker::{Chunker, Segment, Span, Window};
use modelfs::format::config::ChunkingParams;
use modelfs::modelfile::{FileLayout, detect, detect_by_prefix, detect_from_prefix};

const SMALL: ChunkingParams = ChunkingParams {
    min_size: 256,
    avg_size: 1024,
    max_size: 4096,
};

fn check_layout(layout: &FileLayout, file_len: u64) {
    assert_eq!(layout.header.start, 0);
    assert!(layout.header.end <= file_len, "header past the end");
    let mut end = layout.header.end;
    for tensor in &layout.tensors {
        assert!(tensor.range.start >= end, "{} overlaps", tensor.name);
        assert!(
            tensor.range.start < tensor.range.end,
            "{} is empty",
            tensor.name
        );
        assert!(tensor.range.end <= file_len, "{} past the end", tensor.name);
        end = tensor.range.end;
        let first = layout
            .tensor_at(tensor.range.start)
            .expect("tensor at its start");
        assert_eq!(first.range, tensor.range);
        let last = layout
            .tensor_at(tensor.range.end - 1)
            .expect("tensor at its end");
        assert_eq!(last.range, tensor.range);
        if let Some(fields) = tensor.element.record_fields() {
            assert!(modelfs::format::grouped::valid_fields(fields));
        }
    }
    let cuts = layout.cut_points();
    assert!(
        cuts.windows(2).all(|w| w[0] < w[1]),
        "cut points out of order: {cuts:?}"
    );
    assert!(cuts.iter().all(|&c| c <= file_len));
}

/// Segments the way ingest builds them: the header, each tensor, the gaps between.
fn segments(layout: &FileLayout, len: usize) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut push = |range: std::ops::Range<usize>, record| {
        if !range.is_empty() {
            out.push(Segment { range, record });
        }
    };
    push(0..layout.header.end as usize, None);
    pos = pos.max(layout.header.end as usize);
    for tensor in &layout.tensors {
        let (start, end) = (tensor.range.start as usize, tensor.range.end as usize);
        push(pos..start, None);
        push(start..end, tensor.element.record_fields());
        pos = end;
    }
    push(pos..len, None);
    out
}

/// The spans of `file` chunked a window of `block` bytes at a time, the way `add` reads a file.
fn windowed_spans(chunker: &Chunker, file: &[u8], segments: &[Segment], block: usize) -> Vec<Span> {
    let len = file.len();
    let (mut from, mut read_to, mut spans) = (0, 0, Vec::new());
    for _ in 0..=len / block + 2 * len / 256 + 2 {
        read_to = (read_to + block).min(len);
        let window = Window {
            bytes: &file[from..read_to],
            base: from,
            last: read_to == len,
        };
        let (more, next) = chunker.window_spans(&window, segments, from);
        assert!(
            next >= from && next <= read_to,
            "window continues at {next}, outside {from}..{read_to}"
        );
        spans.extend(more);
        from = next;
        if read_to == len && from == len {
            return spans;
        }
    }
    panic!("windowed chunking of {len} bytes in blocks of {block} does not end");
}

/// `detect_by_prefix` reading `file`, which claims to be `file_len` bytes long.
fn by_prefix(file: &[u8], file_len: u64) -> Option<FileLayout> {
    let result: Result<_, ()> = detect_by_prefix(file_len, |buf| {
        let n = buf.len().min(file.len());
        buf[..n].copy_from_slice(&file[..n]);
        Ok(n)
    });
    result.expect("reading from memory does not fail")
}

fuzz_target!(|data: &[u8]| {
    let Some((&share, file)) = data.split_first() else {
        return;
    };
    let file_len = file.len() as u64;
    let whole = detect(file);
    if let Some(layout) = &whole {
        check_layout(layout, file_len);
        let segments = segments(layout, file.len());
        let borders: Vec<usize> = segments.iter().map(|s| s.range.end).collect();
        let chunker = Chunker::new(SMALL);
        let whole_spans: Vec<Span> = chunker.segment_spans(file, segments.clone()).collect();
        let block = 64 + usize::from(share) * 41;
        let windowed = windowed_spans(&chunker, file, &segments, block);
        assert!(
            windowed == whole_spans,
            "chunking in windows of {block} bytes cuts differently"
        );
        let mut next = 0;
        for (span, _) in whole_spans {
            assert_eq!(span.start, next, "spans do not tile the file");
            assert!(span.start < span.end && span.len() <= SMALL.max_size as usize);
            assert!(
                !borders.iter().any(|&b| span.start < b && b < span.end),
                "a chunk crosses a segment border"
            );
            next = span.end;
        }
        assert_eq!(next, file.len());
    }
    assert_eq!(
        by_prefix(file, file_len),
        whole,
        "detect_by_prefix differs from detect"
    );
    if let Some(layout) = by_prefix(file, file_len.saturating_mul(3)) {
        check_layout(&layout, file_len.saturating_mul(3));
    }
    let prefix_len = file.len() * usize::from(share) / 255;
    let prefix = &file[..prefix_len];
    if let Some(layout) = detect_from_prefix(prefix, file_len) {
        check_layout(&layout, file_len);
        assert_eq!(
            Some(&layout),
            whole.as_ref(),
            "a prefix parses differently from the file"
        );
    }
    // A file longer than the bytes at hand: the prefix alone never puts tensors past the end.
    if let Some(layout) = detect_from_prefix(file, file_len.saturating_mul(2)) {
        check_layout(&layout, file_len.saturating_mul(2));
    }
});
