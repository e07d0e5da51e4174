"""Stage 5, reading: the extractive reader (MiniLM fine-tuned on SQuAD, shipped as a delta and run
as ONNX) reads the retrieved passages in windows and picks spans; the answer is its best span when
confident, a best guess when unsure, nothing when the passages hold none, with runners-up and
citations. A user's own transformers model can read instead. Who wrote an article and when it came
out are not read by either: they are quoted from its byline and dateline (about.py)."""
