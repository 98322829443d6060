//! Content-defined chunking: bytes in, chunk boundaries out.
//!
//! Owns [`Chunker`], a thin layer over the `fastcdc` crate's 2020 algorithm with the store's fixed
//! parameters. It does not hash, compress or store anything; `ingest` does that with the spans it
//! returns. Boundaries depend only on the bytes and the parameters, so the same content chunks the
//! same way in any file at any offset (after the first cut point).

use std::ops::Range;

use crate::codec::Fields;
use crate::format::config::ChunkingParams;

/// Default chunking parameters for new stores; docs/BENCHMARKS.md has the measurement behind them.
pub const DEFAULT_CHUNKING: ChunkingParams = ChunkingParams {
    min_size: 16 << 10,
    avg_size: 64 << 10,
    max_size: 256 << 10,
};

/// Splits byte slices into content-defined chunks.
#[derive(Debug, Clone, Copy)]
pub struct Chunker {
    params: ChunkingParams,
}

impl Chunker {
    /// A chunker with the given parameters (validated by [`Chunker::validate`] at `init`).
    pub fn new(params: ChunkingParams) -> Chunker {
        Chunker { params }
    }

    /// Checks that the parameters are within what FastCDC accepts.
    pub fn validate(params: &ChunkingParams) -> Result<(), String> {
        use fastcdc::v2020::{
            AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
        };
        let (min, avg, max) = (
            params.min_size as usize,
            params.avg_size as usize,
            params.max_size as usize,
        );
        let in_range = (MINIMUM_MIN..=MINIMUM_MAX).contains(&min)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&avg)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max;
        if !in_range {
            return Err(format!(
                "chunk sizes min {min}, avg {avg}, max {max} are out of range"
            ));
        }
        // FastCDC 2020 reads two bytes per step: odd sizes shift every cut by a byte.
        if [min, avg, max].iter().any(|size| size % 2 != 0) {
            return Err(format!(
                "chunk sizes min {min}, avg {avg}, max {max} must be even"
            ));
        }
        Ok(())
    }

    /// The average chunk length the parameters aim for.
    pub fn avg_chunk_len(&self) -> usize {
        self.params.avg_size as usize
    }

    /// The chunk spans of `data`, in order, covering it exactly. Empty data has no chunks.
    pub fn spans(&self, data: &[u8]) -> impl Iterator<Item = Range<usize>> + use<> {
        let whole = Segment {
            range: 0..data.len(),
            record: None,
        };
        self.segment_spans(data, vec![whole]).map(|(span, _)| span)
    }

    /// The chunk spans of `data` when no chunk may cross a segment border (model files: the header
    /// and each tensor are segments). Inside a segment of fixed-size records (float values,
    /// quantized blocks), cuts fall on record borders so grouped fields line up. Each span comes
    /// with its segment's record fields.
    /// `segments` must be sorted, disjoint, and cover `data`.
    pub fn segment_spans(
        &self,
        data: &[u8],
        segments: Vec<Segment>,
    ) -> impl Iterator<Item = Span> + use<> {
        let window = Window {
            bytes: data,
            base: 0,
            last: true,
        };
        self.window_spans(&window, &segments, 0).0.into_iter()
    }

    /// The spans of a file read one window at a time: cuts from file offset `from` on, within
    /// `window` (whose segments, absolute file ranges, are `segments`), exactly the cuts chunking
    /// the whole file at once makes. Returns them with the offset to continue from: the start of
    /// the first chunk the window cannot finish (its cut could depend on bytes past the window), or
    /// the window's end. The caller reads on from there into the next window.
    pub fn window_spans(
        &self,
        window: &Window<'_>,
        segments: &[Segment],
        from: usize,
    ) -> (Vec<Span>, usize) {
        let p = self.params;
        let cdc = fastcdc::v2020::FastCDC::new(
            window.bytes,
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
        );
        let window_end = window.base + window.bytes.len();
        let mut spans = Vec::with_capacity(window.bytes.len() / p.avg_size as usize + 2);
        for segment in segments
            .iter()
            .filter(|s| s.range.end > from && s.range.start < window_end)
        {
            let mut pos = from.max(segment.range.start);
            let available_end = segment.range.end.min(window_end);
            while pos < segment.range.end {
                let remaining = available_end.saturating_sub(pos);
                // A cut looks at most `max_size` bytes ahead: with fewer bytes in the window and
                // more of the segment beyond it, the cut is not final yet.
                let unfinished = available_end < segment.range.end
                    && remaining < p.max_size as usize
                    && !window.last;
                if remaining == 0 || unfinished {
                    return (spans, pos);
                }
                let (_, cut) = cdc.cut(pos - window.base, remaining);
                let mut end = cut + window.base;
                if let Some(width) = segment
                    .record
                    .map(|f| f.iter().map(|&w| usize::from(w)).sum::<usize>())
                    .filter(|_| end < segment.range.end)
                {
                    let aligned = segment.range.start + (end - segment.range.start) / width * width;
                    if aligned > pos {
                        end = aligned;
                    }
                }
                spans.push((pos..end, segment.record));
                pos = end;
            }
        }
        (spans, window_end)
    }
}

/// A chunk's byte range in the file and the fields of the records in it (if any).
pub type Span = (Range<usize>, Option<Fields>);

/// Bytes of a file being chunked a window at a time.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// File offset of `bytes[0]`.
    pub base: usize,
    /// Whether the window reaches the end of the file.
    pub last: bool,
}

/// A stretch of a file chunked on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Byte range in the file.
    pub range: Range<usize>,
    /// The fields of the fixed-size records stored there, if grouping them helps compression.
    pub record: Option<Fields>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::random_bytes;
    use proptest::prelude::*;

    const SMALL: ChunkingParams = ChunkingParams {
        min_size: 256,
        avg_size: 1024,
        max_size: 4096,
    };

    proptest! {
        #[test]
        fn spans_tile_the_input(len in 0usize..200_000, seed in any::<u64>()) {
            let data = random_bytes(seed, len);
            let chunker = Chunker::new(SMALL);
            let mut next = 0;
            for span in chunker.spans(&data) {
                prop_assert_eq!(span.start, next);
                prop_assert!(span.len() <= SMALL.max_size as usize);
                prop_assert!(!span.is_empty());
                next = span.end;
            }
            prop_assert_eq!(next, data.len());
        }

        #[test]
        fn chunking_is_deterministic_and_resynchronises(seed in any::<u64>(), prefix in 1usize..5000) {
            let data = random_bytes(seed, 100_000);
            let chunker = Chunker::new(SMALL);
            let first: Vec<_> = chunker.spans(&data).collect();
            prop_assert_eq!(&first, &chunker.spans(&data).collect::<Vec<_>>());

            // The same bytes behind an inserted prefix find the same cut points after a few chunks.
            let mut shifted = random_bytes(seed ^ 1, prefix);
            shifted.extend_from_slice(&data);
            let ends: std::collections::HashSet<usize> =
                chunker.spans(&shifted).map(|s| s.end - prefix).collect();
            let shared = first.iter().filter(|s| ends.contains(&s.end)).count();
            prop_assert!(shared * 10 >= first.len() * 8, "only {} of {} cut points survived", shared, first.len());
        }
    }

    #[test]
    fn segments_are_never_crossed_and_float_cuts_are_aligned() {
        let data = random_bytes(5, 200_000);
        let segments = vec![
            Segment {
                range: 0..1000,
                record: None,
            },
            Segment {
                range: 1000..1001,
                record: None,
            },
            Segment {
                range: 1001..150_001,
                record: Some(&[1, 1]),
            },
            Segment {
                range: 150_001..200_000,
                record: Some(&[2, 32]),
            },
        ];
        let spans: Vec<_> = Chunker::new(SMALL)
            .segment_spans(&data, segments.clone())
            .collect();
        let mut next = 0;
        for (span, width) in &spans {
            assert_eq!(span.start, next);
            let segment = segments
                .iter()
                .find(|s| s.range.contains(&span.start))
                .unwrap();
            assert!(
                span.end <= segment.range.end,
                "{span:?} crosses {segment:?}"
            );
            assert_eq!(*width, segment.record);
            if let Some(w) = width
                .map(|f| f.iter().map(|&w| usize::from(w)).sum::<usize>())
                .filter(|_| span.end < segment.range.end)
            {
                assert_eq!(
                    (span.end - segment.range.start) % w,
                    0,
                    "{span:?} not on a value border"
                );
            }
            next = span.end;
        }
        assert_eq!(next, data.len());
        // A tensor's chunks do not depend on where the tensor sits in the file.
        let tensor = &data[1001..150_001];
        let mut moved = random_bytes(6, 77);
        moved.extend_from_slice(tensor);
        let alone: Vec<_> = Chunker::new(SMALL)
            .segment_spans(
                &moved,
                vec![
                    Segment {
                        range: 0..77,
                        record: None,
                    },
                    Segment {
                        range: 77..moved.len(),
                        record: Some(&[1, 1]),
                    },
                ],
            )
            .filter(|(s, _)| s.start >= 77)
            .map(|(s, _)| (s.start - 77)..(s.end - 77))
            .collect();
        let in_file: Vec<_> = spans
            .iter()
            .filter(|(s, _)| s.start >= 1001 && s.end <= 150_001)
            .map(|(s, _)| (s.start - 1001)..(s.end - 1001))
            .collect();
        assert_eq!(alone, in_file);
    }

    /// Compares `actual` with the checked-in snapshot `name` (under `src/chunker/`); with
    /// `UPDATE_SNAPSHOTS=1` in the environment, rewrites the snapshot instead.
    fn check_snapshot(name: &str, expected: &str, actual: &str) {
        if actual == expected {
            return;
        }
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src/chunker")
                .join(name);
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let first_difference = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "chunk boundaries differ from src/chunker/{name} at line {}: a change to chunking \
             breaks dedup with every existing store. If it is intended, rerun with \
             UPDATE_SNAPSHOTS=1 and review the diff.\n--- actual ---\n{actual}",
            first_difference + 1
        );
    }

    /// One `start length fields` line per span (`-` for no record fields).
    fn describe(spans: impl Iterator<Item = (Range<usize>, Option<Fields>)>) -> String {
        let mut out = String::new();
        for (span, fields) in spans {
            let fields = match fields {
                Some(fields) => fields
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                None => "-".to_owned(),
            };
            out += &format!("{} {} {fields}\n", span.start, span.len());
        }
        out
    }

    #[test]
    fn default_boundaries_of_a_generated_model_are_pinned() {
        let data = random_bytes(2024, 2 << 20);
        let spans = Chunker::new(DEFAULT_CHUNKING)
            .spans(&data)
            .map(|span| (span, None));
        let actual = format!(
            "# Chunk boundaries of testutil::random_bytes(2024, 2 MiB) with DEFAULT_CHUNKING.\n\
             # start length fields\n{}",
            describe(spans)
        );
        check_snapshot(
            "random-2mib.txt",
            include_str!("chunker/random-2mib.txt"),
            &actual,
        );
    }

    #[test]
    fn default_boundaries_of_a_generated_gguf_are_pinned() {
        let mut data = crate::modelfile::tests::gguf_bytes(&[
            ("token_embd.weight", 300_000, 1),
            ("blk.0.attn_q.weight", 32 * 6000, 8),
            ("blk.0.ffn_norm.weight", 1000, 0),
            ("blk.0.ffn_down.weight", 256 * 1000, 12),
            ("output.weight", 200_000, 30),
        ]);
        let layout = crate::modelfile::detect(&data).expect("a valid GGUF");
        // Realistic tensor bytes, so content-defined cuts fall where they would in a model.
        for (i, tensor) in layout.tensors.iter().enumerate() {
            let range = tensor.range.start as usize..tensor.range.end as usize;
            data[range.clone()].copy_from_slice(&random_bytes(100 + i as u64, range.len()));
        }
        // The segments ingest chunks separately: the header, each tensor, the gaps between.
        let segments = crate::ingest::segments_of(data.len(), Some(&layout));
        let mut text = String::from(
            "# Chunk boundaries of a generated GGUF (5 tensors) with DEFAULT_CHUNKING, chunked\n\
             # tensor by tensor as ingest does.\n# start length fields\n",
        );
        for segment in &segments {
            let name = layout
                .tensors
                .iter()
                .find(|t| t.range.start as usize == segment.range.start)
                .map_or_else(
                    || "(not a tensor)".to_owned(),
                    |t| format!("{} {:?}", t.name, t.element),
                );
            text += &format!("# {}..{} {name}\n", segment.range.start, segment.range.end);
            let spans = Chunker::new(DEFAULT_CHUNKING).segment_spans(&data, vec![segment.clone()]);
            text += &describe(spans);
        }
        // Chunking segment by segment is what chunking them all at once does.
        let at_once = describe(Chunker::new(DEFAULT_CHUNKING).segment_spans(&data, segments));
        let lines: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(lines, at_once);
        check_snapshot("gguf.txt", include_str!("chunker/gguf.txt"), &text);
    }

    #[test]
    fn default_parameters_are_valid() {
        Chunker::validate(&DEFAULT_CHUNKING).unwrap();
        let odd = ChunkingParams {
            min_size: DEFAULT_CHUNKING.min_size - 1,
            ..DEFAULT_CHUNKING
        };
        assert!(
            Chunker::validate(&odd).is_err(),
            "odd sizes shift FastCDC's cuts"
        );
        assert!(
            Chunker::validate(&ChunkingParams {
                min_size: 10,
                avg_size: 5,
                max_size: 1
            })
            .is_err()
        );
    }
}
