"""Stage 4, where an index is kept: the protocol `qa.api.QA` builds and searches through
(`base`), the index folder behind it (the default), and a Milvus collection (`milvus`)."""
