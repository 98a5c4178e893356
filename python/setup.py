"""Bundles libof3c into the package when it is built (pip install ./python).

The library comes from the repository's bin/libof3c.so (`make lib`), or is
built with `go build -buildmode=c-shared` when the Go toolchain and the
repository are there. Editable installs (make setup) skip this: they find
bin/libof3c.so through the repository (see of3c/_lib.py).
"""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LIB = "libof3c.so"


class BuildPyWithLib(build_py):
    def run(self):
        super().run()
        dst = os.path.join(self.build_lib, "of3c", LIB)
        src = os.path.join(REPO, "bin", LIB)
        if not os.path.exists(src) and os.path.exists(os.path.join(REPO, "cmd", "libof3c")):
            subprocess.check_call(
                ["go", "build", "-buildmode=c-shared", "-o", src, "./cmd/libof3c"], cwd=REPO)
        if not os.path.exists(src):
            raise SystemExit(f"of3c: {src} is missing; run `make lib` in the repository first")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildPyWithLib})
