"""The Milvus backend: a collection of passages with dense vectors and BM25 weights as sparse
vectors, and a catalog beside it; built incrementally, searched as the index folder is."""
