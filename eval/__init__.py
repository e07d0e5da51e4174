"""The evaluation and benchmark scripts, run from the repository root as `python -m eval.NAME`."""
