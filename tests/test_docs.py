"""The documentation builds from the docstrings and the README with warnings as errors."""

import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_api_documentation_builds_without_warnings(tmp_path):
    built = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                            str(DOCS), str(tmp_path / "html")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-4000:]
    api = (tmp_path / "html" / "api.html").read_text()
    for name in ("select_causal", "CausalLasso", "prune_and_retrain", "Taylor", "DataLoaders", "OptimizerSpec"):
        assert re.search(rf'id="granger_prune\.[\w.]*\.{name}"', api), name  # documented, with an anchor
    readme = (tmp_path / "html" / "readme.html").read_text()
    assert "Your own model and data" in readme and "Regressor" in readme
