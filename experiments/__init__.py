"""The project's experiment binaries, run as `python -m experiments.<name>`.

Importing this package first re-executes such a binary with glibc's malloc asking for transparent
huge pages (`experiments.startup`: XLA:CPU's per-call temporaries then cost a few hundred page
faults instead of tens of thousands); importing it from other programs changes nothing.
"""

from experiments import startup

startup.reexec_for_binary()
