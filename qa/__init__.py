"""qa: answers to questions about a folder of articles, read on this machine, each cited to the
exact characters it came from.

The pipeline, one package per stage, each importing only the stages before it:
    corpus    files -> articles (text, title, date, author, pages) -> passages with offsets
    search    the embedding model, BM25 terms and scorers, and the hybrid retriever
    index     the index on disk: built, checked for freshness, replaced atomically
    backends  where an index is kept: the index folder, or a Milvus collection
    reading   the extractive reader: spans, confidence, the answer, its best guess and runners-up
    interface the `qa` command: ask, search, index, chat, serve, and how results are shown
`qa.api.QA` joins them for a caller; `qa.errors` holds the errors a user can act on.
"""
