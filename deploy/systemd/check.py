"""`systemd-analyze verify` for deploy/systemd/ (make deploy-check), as any user, on any machine.

The units are verified inside a throwaway root that holds this machine's own system units, the
assistant's units in /etc/systemd/system, and an executable at each path an Exec line names (the
install under /opt/assistant, which tests/deploy checks against the Makefile's layout). Any
message fails the check: systemd only warns about a line it cannot parse, and ignores it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

UNITS = Path(__file__).resolve().parent
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
EXEC = re.compile(r"^Exec\w+=[-@:+!]*(/\S+)", re.M)


def main() -> None:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        sys.exit("systemd-analyze not found: install Debian's systemd package")
    units = sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.target"))
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
        installed = root / "etc/systemd/system"
        installed.mkdir(parents=True)
        for unit in units:
            shutil.copyfile(unit, installed / unit.name)
            for program in EXEC.findall(unit.read_text()):
                stand_in = root / program.lstrip("/")
                stand_in.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy("/bin/true", stand_in)
        result = subprocess.run(
            [analyze, "verify", f"--root={root}", *(unit.name for unit in units)],
            capture_output=True,
            text=True,
        )
    messages = (result.stdout + result.stderr).strip()
    if result.returncode or messages:
        sys.exit(f"systemd-analyze verify failed for deploy/systemd/:\n{messages}")
    print(f"systemd-analyze verify: {len(units)} units in deploy/systemd/ are valid")


if __name__ == "__main__":
    main()
