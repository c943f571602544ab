"""Compile the engine's hot modules (mappings/engine/accelerated.py MODULES) with Cython into build/accelerated/.

Only modules whose current source has no build yet are compiled (a second run does nothing), two at a time; older
builds of a module are removed. Exits 1 with the compiler's message when a build fails: the studio then runs those
modules as plain Python, which is slower but the same code. Usage: .venv/bin/python scripts/build_accelerated.py
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _accelerated():
    # Loaded by path: importing the mappings package would import the very modules being built.
    spec = importlib.util.spec_from_file_location("_accelerated", ROOT / "mappings/engine/accelerated.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    accelerated = _accelerated()
    wanted = {}
    for module in accelerated.MODULES:
        source = accelerated.source_path(module).read_bytes()
        target = accelerated.built_path(module, source)
        if not target.is_file():
            wanted[module] = (source, target)
    if not wanted:
        return 0
    import lxml
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    accelerated.BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fhir-studio-build-") as work:
        extensions = []
        for module in wanted:
            # The source as read above, copied under its package path: the build is of exactly the text hashed.
            copy = Path(work, "src", *module.split(".")).with_suffix(".py")
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(wanted[module][0])
            # lxml's headers: a module may read lxml's elements through its C API (xmltree.py). Cython's C warns a lot.
            extensions.append(
                Extension(module, [str(copy)], include_dirs=lxml.get_include(), extra_compile_args=["-w"])
            )
        for package in {Path(work, "src", *module.split(".")[:-1]) for module in wanted}:
            while package != Path(work, "src"):  # Cython names a module by the __init__.py files above it
                (package / "__init__.py").touch()
                package = package.parent
        modules = cythonize(
            extensions,
            quiet=True,
            nthreads=2,
            build_dir=str(Path(work, "c")),
            compiler_directives=accelerated.DIRECTIVES,
        )
        distribution = Distribution({"ext_modules": modules, "script_args": ["-q"]})
        command = distribution.get_command_obj("build_ext")
        command.build_lib, command.build_temp, command.parallel = str(Path(work, "lib")), str(Path(work, "tmp")), 2
        command.ensure_finalized()
        command.run()
        for module, (_, target) in wanted.items():
            built = command.get_ext_fullpath(module)
            for old in accelerated.BUILD_DIR.glob(f"{module}.*{accelerated.SUFFIX}"):
                old.unlink()
            shutil.copyfile(built, target.with_suffix(".partial"))
            target.with_suffix(".partial").rename(target)  # a reader never sees half a file
    sys.stdout.write(f"compiled {len(wanted)} engine module(s) into {accelerated.BUILD_DIR}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
