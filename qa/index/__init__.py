"""Stage 3, the index on disk: passages, vectors and BM25 terms built from the corpus into a new
generation and switched in atomically; loaded and checked against its manifest; said stale when
the corpus, model or settings changed. Only what qa made is ever replaced or removed."""
