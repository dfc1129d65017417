"""`python -m experiments` lists the binaries and shows the memory allocator their processes get."""

from __future__ import annotations

import ast
import os
import pathlib
import sys

from experiments import startup


def binaries() -> list[tuple[str, str]]:
    """(module, first line of its docstring) of every `experiments.<name>` with a main."""
    found = []
    for path in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        source = path.read_text(encoding="utf-8")
        if "__main__" not in source:
            continue
        summary = (ast.get_docstring(ast.parse(source)) or "").strip().splitlines()
        found.append((f"experiments.{path.stem}", summary[0] if summary else ""))
    return found


def main() -> int:
    print("binaries (python -m <module> --helpshort for their flags):")
    for module, summary in binaries():
        print(f"  {module:<28} {summary}")
    glibc = startup.glibc_version()
    tunables = os.environ.get("GLIBC_TUNABLES", "") or "(none)"
    print("\nthis process (experiments.startup):")
    print(f"  glibc: {'.'.join(map(str, glibc)) if glibc else 'not glibc'}")
    thp = startup.transparent_hugepages() or "unknown"
    print(f"  transparent huge pages: {thp} ({startup.THP_SETTING})")
    print(f"  GLIBC_TUNABLES: {tunables}")
    reexecuted = os.environ.get(startup.REEXECUTED) == str(os.getpid())
    print(f"  re-executed for huge pages: {'yes' if reexecuted else 'no'}")
    faults = startup.page_faults_touching(64)
    print(f"  page faults touching 64 MiB of fresh memory: {faults:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
