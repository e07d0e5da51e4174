"""Stage 2, search: the embedding model (sentence-transformers, run as ONNX), BM25's terms and
scorers, and the retriever that fuses both rankings over any index that offers them (qa.index's
files or a Milvus collection), within the articles a question is scoped to."""
