"""requirements.txt alone (what `./scripts/run` installs) must hold every third-party package the studio's own code
imports: the test suite runs with requirements-dev.txt, whose extra packages can bring one in unnoticed (jsonpatch came
with moto's dependencies, and the run command failed on a fresh machine)."""

import ast
import re
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP_PACKAGES = ("mappings", "fhirstudio")


def _name(text: str) -> str:
    return re.split(r"[\s\[=<>!~;]", text.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _declared_with_dependencies() -> set[str]:
    """requirements.txt's distributions and everything they require, as installed."""
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    todo = [_name(line) for line in lines if line.strip() and not line.startswith(("#", "-"))]
    found: set[str] = set()
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            wanted = requires(name) or []
        except PackageNotFoundError:
            continue
        todo += [_name(item) for item in wanted if "extra ==" not in item]
    return found


def _third_party_imports() -> set[str]:
    modules: set[str] = set()
    for package in APP_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return {name for name in modules if name not in sys.stdlib_module_names and name not in APP_PACKAGES}


def test_every_package_the_studio_imports_is_in_the_runtime_requirements() -> None:
    distributions = packages_distributions()
    declared = _declared_with_dependencies()
    missing = {
        module: sorted(distributions.get(module, [module]))
        for module in _third_party_imports()
        if not any(_name(dist) in declared for dist in distributions.get(module, [module]))
    }
    assert not missing, f"imported by the studio but not in requirements.txt (nor required by what is): {missing}"
