"""Choosing a backend, without Milvus installed: what is missing is said in one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from qa.backends.milvus.client import MilvusConfig, connect
from qa.errors import QAError
from tests.conftest import ROOT


def test_the_milvus_backend_without_its_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # import fails as when it is not installed
    with pytest.raises(QAError, match=r"needs the milvus extra: pip install 'qa\[milvus\]'"):
        connect(MilvusConfig("./milvus.db"))


def test_backend_milvus_needs_a_uri(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "QA_MILVUS_URI"}
    result = subprocess.run([sys.executable, "-m", "qa", "ask", "who", "--backend", "milvus"], cwd=tmp_path,
                            capture_output=True, text=True, env={**env, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 2
    assert "--backend milvus needs --milvus-uri" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_local_uri_is_milvus_lite_and_a_url_a_server():
    assert MilvusConfig("./milvus.db").local and MilvusConfig("/data/qa.db").local
    assert not MilvusConfig("http://milvus:19530").local and not MilvusConfig("https://x.example:443").local
