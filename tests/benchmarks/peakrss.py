"""Run a Python console script in this very process and write down its own peak RSS.

    TOOL_PYTHON peakrss.py OUTFILE SCRIPT [ARGS...]

A child's ``ru_maxrss`` (from ``wait4``) also carries the high-water mark of the
process that forked it (Linux records the old memory map's peak at exec, and
with vfork that map is the parent's), so a large harness would show through.
This runs SCRIPT under its own interpreter with ``runpy`` and, at exit, writes
``VmHWM`` (KiB) of this process to OUTFILE, plus the largest peak of the processes
it started and waited for (morgan's download process runs beside it the whole
time, so the two count together; that peak is their ``ru_maxrss``, which for the
same reason may be this process's size when it started them: an upper bound).
Standard library only.
"""

import atexit
import os
import resource
import runpy
import sys


def _record(path: str) -> None:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                with open(path, "w") as out:
                    out.write(str(int(line.split()[1]) + children))
                return


def main() -> None:
    out, script = sys.argv[1], sys.argv[2]
    sys.argv = sys.argv[2:]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    atexit.register(_record, out)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
