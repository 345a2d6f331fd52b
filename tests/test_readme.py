"""The README's example runs as written."""

import re
import subprocess
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    result = namespace["result"]
    assert abs(namespace["sparsity_table"](result.masks).iloc[-1]["sparsity"] - 0.9) < 1e-3


def test_ci_runs_the_readme_test_command():
    text = README.read_text()
    command = text.split("<!-- test-command -->")[1].split("```bash\n")[1].split("\n")[0]
    assert "python -m pytest" in command
    ci = README.parent / ".ci" / "run"
    awk = re.search(r"cmd=\$\(awk '([^']+)' README.md\)", ci.read_text()).group(1)
    extracted = subprocess.run(["awk", awk, str(README)], capture_output=True, text=True, check=True)
    assert extracted.stdout.strip() == command
